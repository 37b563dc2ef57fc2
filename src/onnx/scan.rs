//! Counts read from the protobuf wire format before a model is decoded: how many nodes its main
//! graph has and how many inputs its widest node reads. Decoding a `NodeProto` costs far more
//! memory than its bytes (300,000 Identity nodes, 11 MiB, decode to about 900 MiB), so limits on
//! these counts are checked on the file's bytes first, in one pass that allocates nothing.
//!
//! The scan walks `ModelProto.graph` (field 7), its `node` entries (field 1 of `GraphProto`) and
//! each node's `input` entries (field 1 of `NodeProto`), skipping every other field by its wire
//! type. Repeated `graph` fields are merged by protobuf, so their nodes add up here too. Bytes
//! that are not well-formed protobuf end the scan with what was counted so far: decoding then
//! says what is wrong with them.

/// What the scan counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Nodes of the main graph.
    pub nodes: usize,
    /// The most inputs of one node of the main graph.
    pub widest_node: usize,
    /// That node's name (field 3 of `NodeProto`), op (field 4) and first output (field 2), to
    /// name it by.
    pub widest_name: Option<String>,
    pub widest_op: Option<String>,
    pub widest_output: Option<String>,
}

/// The wire types of protobuf.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

/// A cursor over protobuf bytes.
struct Reader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn new(bytes: &'b [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.at)?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// The next field: its number, its wire type and, for a length-delimited field, its bytes.
    fn field(&mut self) -> Option<(u64, u64, &'b [u8])> {
        let key = self.varint()?;
        let (number, wire) = (key >> 3, key & 7);
        let body: &'b [u8] = match wire {
            VARINT => {
                self.varint()?;
                &[]
            }
            FIXED64 => self.skip(8)?,
            FIXED32 => self.skip(4)?,
            LEN => {
                let n = usize::try_from(self.varint()?).ok()?;
                self.skip(n)?
            }
            _ => return None, // groups (deprecated) and invalid wire types
        };
        Some((number, wire, body))
    }

    fn skip(&mut self, n: usize) -> Option<&'b [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
}

/// The length-delimited entries of field `number` in the message `bytes`, until the bytes end
/// or stop being well-formed.
fn entries(bytes: &[u8], number: u64) -> impl Iterator<Item = &[u8]> {
    let mut r = Reader::new(bytes);
    std::iter::from_fn(move || loop {
        if r.done() {
            return None;
        }
        match r.field()? {
            (n, LEN, body) if n == number => return Some(body),
            _ => continue,
        }
    })
}

/// Counts the main graph's nodes and its widest node's inputs in the encoded `ModelProto`.
pub fn counts(model: &[u8]) -> Counts {
    let mut c = Counts::default();
    for graph in entries(model, 7) {
        for node in entries(graph, 1) {
            c.nodes += 1;
            let inputs = entries(node, 1).count();
            if inputs > c.widest_node {
                c.widest_node = inputs;
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                c.widest_name = entries(node, 3).last().map(text);
                c.widest_op = entries(node, 4).last().map(text);
                c.widest_output = entries(node, 2).next().map(text);
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::{GraphProto, ModelProto, NodeProto};
    use prost::Message;

    fn model_of(nodes: Vec<NodeProto>) -> ModelProto {
        ModelProto {
            ir_version: Some(8),
            graph: Some(GraphProto {
                name: Some("g".into()),
                node: nodes,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn with_inputs(n: usize) -> NodeProto {
        NodeProto {
            op_type: Some("Concat".into()),
            input: vec!["x".into(); n],
            output: vec!["y".into()],
            ..Default::default()
        }
    }

    /// The counts match the decoded model's; two encoded graphs merge; truncated bytes count
    /// what came before the cut; garbage counts nothing and does not panic.
    #[test]
    fn counts_match_the_decoded_model() {
        let mut widest = with_inputs(7);
        widest.name = Some("cat".into());
        let m = model_of(vec![with_inputs(3), with_inputs(0), widest]);
        let bytes = m.encode_to_vec();
        assert_eq!(
            counts(&bytes),
            Counts {
                nodes: 3,
                widest_node: 7,
                widest_name: Some("cat".into()),
                widest_op: Some("Concat".into()),
                widest_output: Some("y".into()),
            }
        );
        let twice = [bytes.clone(), bytes.clone()].concat();
        assert_eq!(counts(&twice).nodes, 6);
        assert_eq!(
            ModelProto::decode(twice.as_slice())
                .unwrap()
                .graph
                .unwrap()
                .node
                .len(),
            6
        );
        assert!(counts(&bytes[..bytes.len() / 2]).nodes <= 3);
        assert_eq!(counts(&[0xff; 64]), Counts::default());
        assert_eq!(counts(&[]), Counts::default());
    }
}
