// BLAKE3 of a short ASCII string (at most one 64-byte block), without
// allocating: a session token is 43 ASCII characters, and every request
// hashes one. The general implementation (@noble/hashes) builds a hasher and
// several typed arrays per call, which cost more than the database read's
// own client work (bench/profile.ts). test/token.test.ts checks this against
// it on every length from 0 to 64.

import { Buffer } from "node:buffer"

const IV = Int32Array.of(
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
)
// domain flags of the compression: the block starts and ends the one chunk, which is the root
const CHUNK_START = 1
const CHUNK_END = 2
const ROOT = 8
/** How the message words move between rounds. */
const PERMUTATION = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8]
/** The message word each of the 7 rounds' 16 steps takes: the permutation applied round after round. */
const SCHEDULE = (() => {
  const schedule = new Uint8Array(7 * 16)
  let order = Array.from({ length: 16 }, (_, i) => i)
  for (let round = 0; round < 7; round++) {
    schedule.set(order, round * 16)
    order = order.map((_, i) => order[PERMUTATION[i] as number] as number)
  }
  return schedule
})()

const m = new Int32Array(16)
/** The hash's 32 bytes, written as little-endian words, read out as hex. */
const output_bytes = Buffer.alloc(32)
const output = new DataView(output_bytes.buffer, output_bytes.byteOffset, 32)

/**
 * The 64 hex characters of BLAKE3(`text`), or undefined when `text` is not
 * ASCII or longer than 64 characters (hash it the general way then).
 *
 * The compression keeps its 16 state words in locals and writes each
 * quarter-round out (column steps, then diagonal steps): state kept in a
 * typed array and a quarter-round function cost about three times as much.
 */
export const blake3_short_ascii_hex = (text: string): string | undefined => {
  if (text.length > 64) return undefined
  m.fill(0)
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code > 0x7f) return undefined
    m[i >> 2] = (m[i >> 2] as number) | (code << ((i & 3) * 8))
  }
  // chaining value = IV, then IV's first half, the counter (0, 0), the block
  // length, and the flags: this block starts and ends the one chunk, the root
  // biome-ignore format: four state words to a line
  let v0 = IV[0] as number, v1 = IV[1] as number, v2 = IV[2] as number, v3 = IV[3] as number
  // biome-ignore format: four state words to a line
  let v4 = IV[4] as number, v5 = IV[5] as number, v6 = IV[6] as number, v7 = IV[7] as number
  // biome-ignore format: four state words to a line
  let v8 = IV[0] as number, v9 = IV[1] as number, v10 = IV[2] as number, v11 = IV[3] as number
  // biome-ignore format: four state words to a line
  let v12 = 0, v13 = 0, v14 = text.length, v15 = CHUNK_START | CHUNK_END | ROOT
  // biome-ignore format: a half quarter-round to a line
  for (let s = 0; s < SCHEDULE.length; s += 16) {
    const x = (step: number) => m[SCHEDULE[s + step] as number] as number
    // columns: G(0, 4, 8, 12), G(1, 5, 9, 13), G(2, 6, 10, 14), G(3, 7, 11, 15)
    v0 = (v0 + v4 + x(0)) | 0; v12 ^= v0; v12 = (v12 >>> 16) | (v12 << 16); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 12) | (v4 << 20)
    v0 = (v0 + v4 + x(1)) | 0; v12 ^= v0; v12 = (v12 >>> 8) | (v12 << 24); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 7) | (v4 << 25)
    v1 = (v1 + v5 + x(2)) | 0; v13 ^= v1; v13 = (v13 >>> 16) | (v13 << 16); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 12) | (v5 << 20)
    v1 = (v1 + v5 + x(3)) | 0; v13 ^= v1; v13 = (v13 >>> 8) | (v13 << 24); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 7) | (v5 << 25)
    v2 = (v2 + v6 + x(4)) | 0; v14 ^= v2; v14 = (v14 >>> 16) | (v14 << 16); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 12) | (v6 << 20)
    v2 = (v2 + v6 + x(5)) | 0; v14 ^= v2; v14 = (v14 >>> 8) | (v14 << 24); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 7) | (v6 << 25)
    v3 = (v3 + v7 + x(6)) | 0; v15 ^= v3; v15 = (v15 >>> 16) | (v15 << 16); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 12) | (v7 << 20)
    v3 = (v3 + v7 + x(7)) | 0; v15 ^= v3; v15 = (v15 >>> 8) | (v15 << 24); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 7) | (v7 << 25)
    // diagonals: G(0, 5, 10, 15), G(1, 6, 11, 12), G(2, 7, 8, 13), G(3, 4, 9, 14)
    v0 = (v0 + v5 + x(8)) | 0; v15 ^= v0; v15 = (v15 >>> 16) | (v15 << 16); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 12) | (v5 << 20)
    v0 = (v0 + v5 + x(9)) | 0; v15 ^= v0; v15 = (v15 >>> 8) | (v15 << 24); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 7) | (v5 << 25)
    v1 = (v1 + v6 + x(10)) | 0; v12 ^= v1; v12 = (v12 >>> 16) | (v12 << 16); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 12) | (v6 << 20)
    v1 = (v1 + v6 + x(11)) | 0; v12 ^= v1; v12 = (v12 >>> 8) | (v12 << 24); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 7) | (v6 << 25)
    v2 = (v2 + v7 + x(12)) | 0; v13 ^= v2; v13 = (v13 >>> 16) | (v13 << 16); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 12) | (v7 << 20)
    v2 = (v2 + v7 + x(13)) | 0; v13 ^= v2; v13 = (v13 >>> 8) | (v13 << 24); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 7) | (v7 << 25)
    v3 = (v3 + v4 + x(14)) | 0; v14 ^= v3; v14 = (v14 >>> 16) | (v14 << 16); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 12) | (v4 << 20)
    v3 = (v3 + v4 + x(15)) | 0; v14 ^= v3; v14 = (v14 >>> 8) | (v14 << 24); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 7) | (v4 << 25)
  }
  // the first 32 bytes of output: the state's two halves XORed, as hex in
  // one native step: a flat string (one built by concatenation costs a
  // flattening at its first slice or Map lookup)
  output.setInt32(0, v0 ^ v8, true)
  output.setInt32(4, v1 ^ v9, true)
  output.setInt32(8, v2 ^ v10, true)
  output.setInt32(12, v3 ^ v11, true)
  output.setInt32(16, v4 ^ v12, true)
  output.setInt32(20, v5 ^ v13, true)
  output.setInt32(24, v6 ^ v14, true)
  output.setInt32(28, v7 ^ v15, true)
  return output_bytes.toString("hex")
}
