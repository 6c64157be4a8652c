//! Moving replication frames over a byte stream: whole frames out of reads that split
//! them anywhere, and one frame per write.

use fix_store::replication::{decode, encode, Frame, FrameError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads whole frames from a byte stream.
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    /// Where the unread bytes in `buf` start: frames are taken from here, and the
    /// buffer is compacted once per read, not once per frame.
    start: usize,
    limit: usize,
}

/// The most one read takes in.
const READ_SIZE: u64 = 64 << 10;

impl FrameReader {
    /// A reader refusing frames larger than `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            buf: Vec::with_capacity(READ_SIZE as usize),
            start: 0,
            limit,
        }
    }

    /// The next frame; `None` at a clean end of stream.
    pub(crate) async fn next(
        &mut self,
        rd: &mut (impl AsyncRead + Unpin),
    ) -> std::io::Result<Option<Frame>> {
        loop {
            match decode(&self.buf[self.start..], self.limit) {
                Ok((frame, used)) => {
                    self.start += used;
                    return Ok(Some(frame));
                }
                Err(FrameError::Incomplete) => {}
                Err(e) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
                }
            }
            // Only part of a frame is left: move it to the front, then read at most
            // READ_SIZE straight into the buffer's spare room (nothing zeroed per read).
            self.buf.drain(..self.start);
            self.start = 0;
            self.buf.reserve(READ_SIZE as usize);
            if (&mut *rd).take(READ_SIZE).read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }
}

/// Writes one frame.
pub(crate) async fn send(wr: &mut (impl AsyncWrite + Unpin), frame: &Frame) -> std::io::Result<()> {
    let mut out = Vec::new();
    encode(frame, &mut out);
    wr.write_all(&out).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::MAX_FRAME;

    /// Hands out at most `step` bytes per read: frames arrive split anywhere.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = self
                .step
                .min(buf.remaining())
                .min(self.bytes.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.bytes[at..at + n]);
            self.at += n;
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Frames of every size, read in pieces smaller and larger than a frame and larger
    /// than one read, come out whole and in order, and the stream's end is seen.
    #[tokio::test]
    async fn the_frame_reader_reassembles_frames_however_the_bytes_arrive() {
        // Up to 20 KB each, and one of 150 KB (more than one read takes in).
        let frames: Vec<Frame> = (0..100u64)
            .map(|i| Frame::Records {
                epoch: 3,
                start_position: i * 1000,
                records: vec![
                    i as u8;
                    if i == 50 {
                        150_000
                    } else {
                        (i as usize * 997) % 20_000
                    }
                ],
            })
            .collect();
        let mut bytes = Vec::new();
        for f in &frames {
            encode(f, &mut bytes);
        }
        for step in [1, 7, 4096, 100_000, usize::MAX] {
            let mut rd = Trickle {
                bytes: bytes.clone(),
                at: 0,
                step,
            };
            let mut reader = FrameReader::new(MAX_FRAME);
            for want in &frames {
                let got = reader.next(&mut rd).await.expect("reads").expect("a frame");
                assert_eq!(&got, want, "read {step} bytes at a time");
            }
            assert!(reader.next(&mut rd).await.expect("reads").is_none());
        }
    }
}
