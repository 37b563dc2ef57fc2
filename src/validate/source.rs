//! How a model reaches tract: as a small protobuf whose weights stay in the files they were read
//! from (tract reads each tensor from its file as it builds the model), so validation holds no
//! copy of the weights besides tract's own.

use prost::Message;
use tract_onnx::pb;

use crate::onnx;
use crate::onnx::tensor::ElemType;

/// A model as tract reads it.
pub struct ModelSource {
    /// The serialized `ModelProto`, its large weights as external data.
    proto: Vec<u8>,
    /// The folder the external data is found in.
    dir: Option<String>,
    /// Bytes of weights tract will hold once it has loaded the model.
    weight_bytes: u64,
}

impl ModelSource {
    /// A model serialized whole, its weights inline.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            proto: bytes.to_vec(),
            dir: None,
            weight_bytes: bytes.len() as u64,
        }
    }

    /// A loaded model, its initializers referring to the files they were read from. Float types
    /// converted before running keep their bytes (the conversion rewrites them).
    pub fn from_model(model: &onnx::Model) -> Self {
        let weight_bytes = model
            .graph()
            .initializer
            .iter()
            .map(|t| t.raw_data.as_ref().map_or(0, |r| r.len() as u64))
            .sum();
        let (proto, dir) = model.by_reference(|t| super::float::narrowed(ElemType::of_tensor(t)));
        Self {
            proto: proto.encode_to_vec(),
            dir,
            weight_bytes,
        }
    }

    /// The folder external data is read from.
    pub(super) fn dir(&self) -> Option<&str> {
        self.dir.as_deref()
    }

    /// Bytes of weights tract will hold once it has loaded the model.
    pub(super) fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// tract's protobuf of the model, without the stale `value_info`.
    pub(super) fn decode(&self) -> anyhow::Result<pb::ModelProto> {
        super::run::decode_model(&self.proto)
    }
}
