//! The project's test vectors: real NW frames from `tests/data/nw-frames.txt` (a copy of
//! `shared/vectors/nw-frames.txt`), for tests, benchmarks and fuzz seeds of every crate.
//! Available with the `test-vectors` feature.

use std::vec::Vec;

/// The whole vector file.
pub const FILE: &str = include_str!("../tests/data/nw-frames.txt");

/// The ids of every block (`R01`, `A03`, `C01`, ...), in file order.
pub fn ids() -> impl Iterator<Item = &'static str> {
    FILE.split("\n=== ")
        .skip(1)
        .filter_map(|block| block.split(':').next())
}

/// The bytes of the block with this id (`"A03"`), or `None` if there is no such block or its
/// hex is malformed.
pub fn bytes(id: &str) -> Option<Vec<u8>> {
    let block = FILE
        .split("\n=== ")
        .skip(1)
        .find(|block| block.split(':').next() == Some(id))?;
    let hex = block.split("\nhex:").nth(1)?.split("\ndecoded:").next()?;
    hex.split_whitespace()
        .map(|byte| u8::from_str_radix(byte, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_has_bytes() {
        let ids: Vec<&str> = ids().collect();
        assert_eq!(ids.len(), 17);
        for id in ids {
            assert!(bytes(id).is_some_and(|b| b.len() >= 20), "{id}");
        }
        assert_eq!(bytes("A03").map(|b| b.len()), Some(291));
        assert_eq!(bytes("Z99"), None);
    }
}
