//! Builders for small graphs in unit tests: weights carry dims only (no data), which is all
//! analysis, splicing and counting look at.

use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::proto::ValueInfoProto;
use crate::onnx::{AttributeProto, GraphProto, NodeProto, TensorProto};

/// Builds a graph node by node; every op returns the name of its output tensor.
pub struct GraphBuilder {
    pub graph: GraphProto,
    count: usize,
}

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    crate::onnx::tensor_value_info(name, DataType::Float as i32, dims)
}

impl GraphBuilder {
    /// A graph with one float input `input` of shape [1, channels, 8, 8].
    pub fn new(channels: i64) -> Self {
        let graph = GraphProto {
            name: Some("test".into()),
            input: vec![value_info("input", &[1, channels, 8, 8])],
            ..Default::default()
        };
        Self { graph, count: 0 }
    }

    fn fresh(&mut self, what: &str) -> String {
        self.count += 1;
        format!("{what}_{}", self.count)
    }

    /// Adds a node `op` reading `inputs`; returns its output.
    pub fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let name = self.fresh(op);
        let out = format!("{name}_out");
        self.graph.node.push(NodeProto {
            name: Some(name),
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute,
            ..Default::default()
        });
        out
    }

    /// Adds a weight initializer with these dims (no data).
    pub fn weight(&mut self, dims: &[i64]) -> String {
        let name = self.fresh("w");
        self.graph.initializer.push(TensorProto {
            name: Some(name.clone()),
            dims: dims.to_vec(),
            data_type: Some(DataType::Float as i32),
            ..Default::default()
        });
        name
    }

    /// Conv with a k×k kernel (and bias) from `cin` to `cout` channels, in `group` groups.
    pub fn conv(&mut self, x: &str, cin: i64, cout: i64, k: i64, group: i64) -> String {
        let w = self.weight(&[cout, cin / group, k, k]);
        let b = self.weight(&[cout]);
        let attrs = vec![
            AttributeProto {
                name: Some("kernel_shape".into()),
                ints: vec![k, k],
                ..Default::default()
            },
            AttributeProto {
                name: Some("group".into()),
                i: Some(group),
                ..Default::default()
            },
        ];
        self.node("Conv", &[x, &w, &b], attrs)
    }

    pub fn relu(&mut self, x: &str) -> String {
        self.node("Relu", &[x], vec![])
    }

    pub fn add(&mut self, a: &str, b: &str) -> String {
        self.node("Add", &[a, b], vec![])
    }

    /// Declares `x` the graph output.
    pub fn finish(mut self, x: &str) -> GraphProto {
        self.graph.output.push(value_info(x, &[]));
        self.graph
    }

    /// A torchvision-style bottleneck: 1×1 → 3×3 (grouped) → 1×1, projection when asked.
    pub fn bottleneck(&mut self, x: &str, cin: i64, width: i64, cout: i64, group: i64) -> String {
        let a = self.conv(x, cin, width, 1, 1);
        let a = self.relu(&a);
        let b = self.conv(&a, width, width, 3, group);
        let b = self.relu(&b);
        let c = self.conv(&b, width, cout, 1, 1);
        let short = if cin != cout {
            self.conv(x, cin, cout, 1, 1)
        } else {
            x.to_string()
        };
        let s = self.add(&c, &short);
        self.relu(&s)
    }

    /// A torchvision-style basic block: 3×3 → 3×3, projection when the channels change.
    pub fn basic(&mut self, x: &str, cin: i64, cout: i64, project: bool) -> String {
        let a = self.conv(x, cin, cout, 3, 1);
        let a = self.relu(&a);
        let b = self.conv(&a, cout, cout, 3, 1);
        let short = if project {
            self.conv(x, cin, cout, 1, 1)
        } else {
            x.to_string()
        };
        let s = self.add(&b, &short);
        self.relu(&s)
    }

    /// An inception module: one 1×1 conv + ReLU branch per width, concatenated on channels.
    pub fn inception(&mut self, x: &str, cin: i64, widths: &[i64]) -> String {
        let outs: Vec<String> = widths
            .iter()
            .map(|&w| {
                let c = self.conv(x, cin, w, 1, 1);
                self.relu(&c)
            })
            .collect();
        let refs: Vec<&str> = outs.iter().map(String::as_str).collect();
        self.inception_concat(&refs)
    }

    /// A Concat of `maps` along the channel axis.
    pub fn inception_concat(&mut self, maps: &[&str]) -> String {
        let axis = AttributeProto {
            name: Some("axis".into()),
            i: Some(1),
            ..Default::default()
        };
        self.node("Concat", maps, vec![axis])
    }

    /// Stem plus the given bottleneck stages (blocks per stage, base width, groups): torchvision
    /// ResNet-50 is `resnet_bottleneck(&[3, 4, 6, 3], 64, 1)`.
    pub fn resnet_bottleneck(blocks: &[usize], base: i64, group: i64) -> GraphProto {
        let mut g = GraphBuilder::new(3);
        let x = g.conv("input", 3, 64, 7, 1);
        let mut x = g.relu(&x);
        let mut cin = 64;
        for (s, &n) in blocks.iter().enumerate() {
            let width = base * (1 << s);
            let cout = 256 * (1 << s);
            for _ in 0..n {
                x = g.bottleneck(&x, cin, width, cout, group);
                cin = cout;
            }
        }
        let p = g.node("GlobalAveragePool", &[&x], vec![]);
        g.finish(&p)
    }

    /// Stem plus basic-block stages: torchvision ResNet-18 is `resnet_basic(&[2, 2, 2, 2])`.
    pub fn resnet_basic(blocks: &[usize]) -> GraphProto {
        let mut g = GraphBuilder::new(3);
        let x = g.conv("input", 3, 64, 7, 1);
        let mut x = g.relu(&x);
        let mut cin = 64;
        for (s, &n) in blocks.iter().enumerate() {
            let cout = 64 * (1 << s);
            for i in 0..n {
                x = g.basic(&x, cin, cout, i == 0 && s > 0);
                cin = cout;
            }
        }
        let p = g.node("GlobalAveragePool", &[&x], vec![]);
        g.finish(&p)
    }
}
