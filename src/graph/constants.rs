//! Constants seen through the graph: the tensor behind a name when it is stored (an initializer
//! or a Constant node, possibly behind Identity / Cast). The dims of weights a constant subgraph
//! computes come from shape inference (`analysis::facts`).

use super::{GraphView, Source};
use crate::onnx::op::Op;
use crate::onnx::{attr_t, TensorProto};

impl<'a> GraphView<'a> {
    /// The constant tensor behind `name`: an initializer, a Constant node's value, or either of
    /// those seen through Identity / Cast nodes (as the TorchScript exporter writes weights).
    pub fn constant(&self, name: &str) -> Option<&'a TensorProto> {
        let mut name = name;
        for _ in 0..64 {
            match self.producer(name)? {
                Source::Initializer(i) => return Some(&self.graph.initializer[i]),
                Source::Input(_) | Source::SparseInitializer(_) => return None,
                Source::Node { node, .. } => {
                    let n = self.node(node);
                    match Op::of(n) {
                        Op::Constant => return attr_t(n, "value"),
                        Op::Identity | Op::Cast => name = n.input.first()?,
                        _ => return None,
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::GraphBuilder;

    #[test]
    fn sees_weights_through_identity() {
        let mut b = GraphBuilder::new(2);
        let w = b.weight(&[4, 2, 3, 3]);
        let id = b.node("Identity", &[&w], vec![]);
        let c = b.node("Conv", &["input", &id], vec![]);
        let g = b.finish(&c);
        let v = GraphView::new(&g).unwrap();
        assert_eq!(
            v.constant(&id).map(|t| t.dims.clone()),
            Some(vec![4i64, 2, 3, 3])
        );
        assert!(v.constant("input").is_none());
    }
}
