// BLAKE3 of a short ASCII string (at most one 64-byte block), without
// allocating: a session token is 43 ASCII characters, and every request
// hashes one. The general implementation (@noble/hashes) builds a hasher and
// several typed arrays per call, which cost more than the database read's
// own client work (bench/profile.ts). test/token.test.ts checks this against
// it on every length from 0 to 64.

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
const PERMUTATION = Uint8Array.of(2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)

const m = new Int32Array(16)
const permuted = new Int32Array(16)
/** The compression's state: chaining value, IV, counter, block length, flags. */
const v = new Int32Array(16)
const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"))

/** BLAKE3's quarter-round on state words a, b, c, d with message words x, y. */
const g = (a: number, b: number, c: number, d: number, x: number, y: number) => {
  let va = v[a] as number
  let vb = v[b] as number
  let vc = v[c] as number
  let vd = v[d] as number
  va = (va + vb + x) | 0
  vd ^= va
  vd = (vd >>> 16) | (vd << 16)
  vc = (vc + vd) | 0
  vb ^= vc
  vb = (vb >>> 12) | (vb << 20)
  va = (va + vb + y) | 0
  vd ^= va
  vd = (vd >>> 8) | (vd << 24)
  vc = (vc + vd) | 0
  vb ^= vc
  vb = (vb >>> 7) | (vb << 25)
  v[a] = va
  v[b] = vb
  v[c] = vc
  v[d] = vd
}

/**
 * The 64 hex characters of BLAKE3(`text`), or undefined when `text` is not
 * ASCII or longer than 64 characters (hash it the general way then).
 */
export const blake3_short_ascii_hex = (text: string): string | undefined => {
  if (text.length > 64) return undefined
  m.fill(0)
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code > 0x7f) return undefined
    m[i >> 2] = (m[i >> 2] as number) | (code << ((i & 3) * 8))
  }
  v.set(IV, 0)
  v.set(IV.subarray(0, 4), 8)
  v[12] = 0 // the counter's two words
  v[13] = 0
  v[14] = text.length
  v[15] = CHUNK_START | CHUNK_END | ROOT
  for (let round = 0; round < 7; round++) {
    if (round > 0) {
      for (let i = 0; i < 16; i++) permuted[i] = m[PERMUTATION[i] as number] as number
      m.set(permuted)
    }
    // columns, then diagonals
    g(0, 4, 8, 12, m[0] as number, m[1] as number)
    g(1, 5, 9, 13, m[2] as number, m[3] as number)
    g(2, 6, 10, 14, m[4] as number, m[5] as number)
    g(3, 7, 11, 15, m[6] as number, m[7] as number)
    g(0, 5, 10, 15, m[8] as number, m[9] as number)
    g(1, 6, 11, 12, m[10] as number, m[11] as number)
    g(2, 7, 8, 13, m[12] as number, m[13] as number)
    g(3, 4, 9, 14, m[14] as number, m[15] as number)
  }
  // the first 32 bytes of output: the state's two halves XORed, little-endian
  let hex = ""
  for (let i = 0; i < 8; i++) {
    const word = (v[i] as number) ^ (v[i + 8] as number)
    hex += `${HEX[word & 0xff]}${HEX[(word >>> 8) & 0xff]}${HEX[(word >>> 16) & 0xff]}${HEX[word >>> 24]}`
  }
  return hex
}
