export const PAGE = "<!doctype html><title>x</title>"
