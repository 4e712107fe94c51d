//! The codec of the generated services: prost's, with a small first buffer.
//!
//! tonic gives every call an encode buffer of 8 KiB up front. A status stream spends nearly
//! all its life idle between two small messages, so 10,000 open streams would hold 80 MB of
//! empty buffers. Starting at 512 bytes (messages here are a few hundred bytes; the buffer
//! grows for a larger one) makes an idle stream cost about a tenth of that.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec as TonicCodec};
use tonic_prost::ProstCodec;

/// First size of a call's encode and decode buffers, in bytes.
const BUFFER_BYTES: usize = 512;
/// Encoded bytes after which a streaming call yields to the runtime (tonic's default).
const YIELD_BYTES: usize = 32 * 1024;

/// prost's codec with [`BUFFER_BYTES`] buffers.
#[derive(Debug, Clone)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> TonicCodec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as TonicCodec>::Encoder;
    type Decoder = <ProstCodec<T, U> as TonicCodec>::Decoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::new(BUFFER_BYTES, YIELD_BYTES))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(BufferSettings::new(BUFFER_BYTES, YIELD_BYTES))
    }
}
