//! Byte scanning shared by the header matcher and the miner's tokenizer.

/// The first byte at or after `at` for which `space` holds, or the end of
/// `bytes`; `space` must hold only for bytes at or below b' ' (whitespace
/// of one kind or another). Eight bytes at a time: a word-wide test flags
/// the first byte below `!` (the lowest flag is exact: borrows only run
/// upward; bytes of multi-byte UTF-8 are never flagged), and only such a
/// byte can be whitespace. Fields and words are short, and this beats both
/// a byte loop and setting up SIMD searches (measured with callgrind).
#[inline]
pub(crate) fn until(bytes: &[u8], mut at: usize, space: impl Fn(u8) -> bool) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    while at + 8 <= bytes.len() {
        let x = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"));
        let mut low = x.wrapping_sub(ONES * 0x21) & !x & (ONES * 0x80);
        while low != 0 {
            let k = at + (low.trailing_zeros() / 8) as usize;
            if space(bytes[k]) {
                return k;
            }
            // A control byte that is not whitespace: look further.
            low &= low - 1;
        }
        at += 8;
    }
    while at < bytes.len() && !space(bytes[at]) {
        at += 1;
    }
    at
}
