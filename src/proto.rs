//! The generated gRPC contract (`proto/cachet/v1/cache.proto`) and its strict codec.

#![allow(clippy::all, missing_docs)]

use std::marker::PhantomData;

use prost::Message as ProstMessage;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstDecoder, ProstEncoder};

tonic::include_proto!("cachet.v1");

/// Descriptor of the contract, served by gRPC reflection so `grpcurl` needs no proto files.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("cachet_v1_descriptor");

/// Protobuf codec that refuses messages carrying fields this server does not know.
///
/// Plain protobuf skips unknown fields silently. For a cache that is dangerous: a client built
/// against a newer contract could send, say, a stricter matching option that this server would
/// ignore and then serve an answer the client asked not to get. A decoded message that re-encodes
/// shorter than what arrived had fields we dropped, and the request is refused with
/// `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct StrictCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for StrictCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for StrictCodec<T, U>
where
    T: ProstMessage + Send + 'static,
    U: ProstMessage + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder(ProstDecoder::new(BufferSettings::default()))
    }
}

pub struct StrictDecoder<U>(ProstDecoder<U>);

impl<U: ProstMessage + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let received = bytes::Buf::remaining(buf);
        let message = self.0.decode(buf)?;
        if let Some(m) = &message {
            let known = m.encoded_len();
            if known < received {
                return Err(Status::invalid_argument(format!(
                    "the request carries {} bytes of fields this server does not know; \
                     regenerate the client from this server's cachet.v1 proto (grpcurl can \
                     describe it) or upgrade the sidecar",
                    received - known
                )));
            }
        }
        Ok(message)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
