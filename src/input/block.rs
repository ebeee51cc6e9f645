//! One zeroed read buffer per thread, for the passes over a file that only look at its
//! bytes (fingerprints, summaries for cutting it, counting line ends).
//!
//! Every worker makes such passes over every update file; a fresh zeroed block for each
//! cost as much as the pass over a small file.

use std::cell::RefCell;

const BLOCK: usize = 1 << 18;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; BLOCK]);
}

/// Runs `read` with this thread's block of 256 KiB (a block of its own if the thread's
/// is in use by a caller further up).
pub fn with_block<R>(read: impl FnOnce(&mut [u8]) -> R) -> R {
    BUFFER.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut block) => read(&mut block),
        Err(_) => read(&mut vec![0; BLOCK]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nested_use_gets_a_block_of_its_own() {
        let sum = with_block(|outer| {
            outer[0] = 1;
            with_block(|inner| {
                inner[0] = 2;
                inner.len()
            }) + usize::from(outer[0])
        });
        assert_eq!(sum, BLOCK + 1);
    }
}
