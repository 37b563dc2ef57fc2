//! [`GraphBuilder`]: graphs built node by node, weights with dims only.

use super::models::{ints_attr, value_info};
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::proto::ValueInfoProto;
use crate::onnx::tensor::ElemType;
use crate::onnx::{AttributeProto, GraphProto, NodeProto, TensorProto};

/// How a ShuffleNet v2 unit cuts its input in halves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halves {
    /// One Split on channels with two outputs.
    Split,
    /// Two Slices on channels with constant bounds.
    Slices,
}

/// Builds a graph node by node; every op returns the name of its output tensor.
pub struct GraphBuilder {
    pub graph: GraphProto,
    count: usize,
}

fn float_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    value_info(name, ElemType::FLOAT, dims)
}

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(i),
        ..Default::default()
    }
}

impl GraphBuilder {
    /// A graph with one float input `input` of shape [1, channels, 8, 8].
    pub fn new(channels: i64) -> Self {
        let graph = GraphProto {
            name: Some("test".into()),
            input: vec![float_info("input", &[1, channels, 8, 8])],
            ..Default::default()
        };
        Self { graph, count: 0 }
    }

    fn fresh(&mut self, what: &str) -> String {
        self.count += 1;
        format!("{what}_{}", self.count)
    }

    /// Adds a node `op` reading `inputs` with `outputs` outputs; returns them.
    pub fn node_outputs(
        &mut self,
        op: &str,
        inputs: &[&str],
        attribute: Vec<AttributeProto>,
        outputs: usize,
    ) -> Vec<String> {
        let name = self.fresh(op);
        let output: Vec<String> = match outputs {
            1 => vec![format!("{name}_out")],
            k => (0..k).map(|i| format!("{name}_out{i}")).collect(),
        };
        self.graph.node.push(NodeProto {
            name: Some(name),
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: output.clone(),
            attribute,
            ..Default::default()
        });
        output
    }

    /// Adds a node `op` reading `inputs`; returns its output.
    pub fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let mut out = self.node_outputs(op, inputs, attribute, 1);
        out.remove(0)
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

    /// Adds a 1-d INT64 initializer holding `values` (a shape, Slice bounds).
    pub fn ints(&mut self, values: &[i64]) -> String {
        let name = self.fresh("i");
        self.graph.initializer.push(TensorProto {
            name: Some(name.clone()),
            dims: vec![values.len() as i64],
            data_type: Some(DataType::Int64 as i32),
            int64_data: values.to_vec(),
            ..Default::default()
        });
        name
    }

    /// `x → Resize (nearest, scales 1, 1, 2, 2) → ·`: the map at twice its resolution.
    pub fn upsample2(&mut self, x: &str) -> String {
        let scales = self.fresh("scales");
        self.graph.initializer.push(TensorProto {
            name: Some(scales.clone()),
            dims: vec![4],
            data_type: Some(DataType::Float as i32),
            float_data: vec![1.0, 1.0, 2.0, 2.0],
            ..Default::default()
        });
        self.node("Resize", &[x, "", &scales], vec![])
    }

    /// Conv 3×3 of stride 2 (and bias) from `cin` to `cout` channels, padded by 1: half the
    /// resolution.
    pub fn conv_s2(&mut self, x: &str, cin: i64, cout: i64) -> String {
        let w = self.weight(&[cout, cin, 3, 3]);
        let b = self.weight(&[cout]);
        let attrs = vec![
            ints_attr("kernel_shape", &[3, 3]),
            ints_attr("pads", &[1; 4]),
            ints_attr("strides", &[2, 2]),
        ];
        self.node("Conv", &[x, &w, &b], attrs)
    }

    /// Conv with a k×k kernel (and bias) from `cin` to `cout` channels, in `group` groups,
    /// padded to keep the map's size (for odd k).
    pub fn conv(&mut self, x: &str, cin: i64, cout: i64, k: i64, group: i64) -> String {
        let w = self.weight(&[cout, cin / group, k, k]);
        let b = self.weight(&[cout]);
        let attrs = vec![
            ints_attr("kernel_shape", &[k, k]),
            ints_attr("pads", &[k / 2; 4]),
            int_attr("group", group),
        ];
        self.node("Conv", &[x, &w, &b], attrs)
    }

    /// `x → Conv k×k, group = c → ·`: a depthwise convolution on c channels.
    pub fn depthwise(&mut self, x: &str, c: i64, k: i64) -> String {
        self.conv(x, c, c, k, c)
    }

    /// `x → Relu → ·`.
    pub fn relu(&mut self, x: &str) -> String {
        self.node("Relu", &[x], vec![])
    }

    /// `Add(a, b) → ·`.
    pub fn add(&mut self, a: &str, b: &str) -> String {
        self.node("Add", &[a, b], vec![])
    }

    /// `inputs → Concat(axis 1) → ·`.
    pub fn concat(&mut self, inputs: &[&str]) -> String {
        self.node("Concat", inputs, vec![int_attr("axis", 1)])
    }

    /// `x → MaxPool 2×2, stride 2 → ·`.
    pub fn max_pool(&mut self, x: &str) -> String {
        let attrs = vec![
            ints_attr("kernel_shape", &[2, 2]),
            ints_attr("strides", &[2, 2]),
        ];
        self.node("MaxPool", &[x], attrs)
    }

    /// `x → MaxPool k×k, stride 1, padded by k / 2 → ·`: SPPF's pool, keeping the size.
    pub fn max_pool_same(&mut self, x: &str, k: i64) -> String {
        let attrs = vec![
            ints_attr("kernel_shape", &[k, k]),
            ints_attr("strides", &[1, 1]),
            ints_attr("pads", &[k / 2; 4]),
        ];
        self.node("MaxPool", &[x], attrs)
    }

    /// `x → Split(axis 1, sizes) → ·, ·, ...`: the map cut along channels.
    pub fn split(&mut self, x: &str, sizes: &[i64]) -> Vec<String> {
        let n = sizes.len();
        let sizes = self.ints(sizes);
        self.node_outputs("Split", &[x, &sizes], vec![int_attr("axis", 1)], n)
    }

    /// Declares `x` the graph output.
    pub fn finish(mut self, x: &str) -> GraphProto {
        self.graph.output.push(float_info(x, &[]));
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

    /// A MobileNet v2 inverted residual, with the Add only when asked (it needs cin = cout):
    /// `x → 1×1 cin→e → ReLU → dw 3×3 e → ReLU → 1×1 e→cout [→ Add(·, x)]`.
    pub fn inverted_residual(
        &mut self,
        x: &str,
        cin: i64,
        expand: i64,
        cout: i64,
        add: bool,
    ) -> String {
        let e = self.conv(x, cin, expand, 1, 1);
        let e = self.relu(&e);
        let d = self.depthwise(&e, expand, 3);
        let d = self.relu(&d);
        let p = self.conv(&d, expand, cout, 1, 1);
        if add {
            self.add(&p, x)
        } else {
            p
        }
    }

    /// One dense layer: `x → 3×3 cin→growth → ReLU → ·`.
    fn dense_layer(&mut self, x: &str, cin: i64, growth: i64) -> String {
        let c = self.conv(x, cin, growth, 3, 1);
        self.relu(&c)
    }

    /// A torchvision DenseNet block, each layer reading one Concat of everything before it:
    /// `x → l1; Concat(x, l1) → l2; …; Concat(x, l1, …, ln) → ·` (cin + layers·growth wide).
    pub fn dense_block(&mut self, x: &str, cin: i64, growth: i64, layers: usize) -> String {
        let mut maps = vec![x.to_string()];
        for i in 0..layers {
            let input = if i == 0 {
                x.to_string()
            } else {
                let refs: Vec<&str> = maps.iter().map(String::as_str).collect();
                self.concat(&refs)
            };
            let l = self.dense_layer(&input, cin + i as i64 * growth, growth);
            maps.push(l);
        }
        let refs: Vec<&str> = maps.iter().map(String::as_str).collect();
        self.concat(&refs)
    }

    /// A dense block concatenating one layer at a time onto the running map:
    /// `x0 = x; xi = Concat(xi-1, layer(xi-1))`, cin + layers·growth wide.
    pub fn dense_block_pairwise(
        &mut self,
        x: &str,
        cin: i64,
        growth: i64,
        layers: usize,
    ) -> String {
        let mut x = x.to_string();
        for i in 0..layers {
            let l = self.dense_layer(&x, cin + i as i64 * growth, growth);
            x = self.concat(&[&x, &l]);
        }
        x
    }

    /// The two channel halves of `x` (c wide), by a Split or by two Slices.
    fn halves(&mut self, x: &str, c: i64, how: Halves) -> (String, String) {
        match how {
            Halves::Split => {
                let mut h = self.node_outputs("Split", &[x], vec![int_attr("axis", 1)], 2);
                let b = h.remove(1);
                (h.remove(0), b)
            }
            Halves::Slices => {
                let axes = self.ints(&[1]);
                let mut slice = |from: i64, to: i64| {
                    let (s, e) = (self.ints(&[from]), self.ints(&[to]));
                    self.node("Slice", &[x, &s, &e, &axes], vec![])
                };
                (slice(0, c / 2), slice(c / 2, c))
            }
        }
    }

    /// A stride-1 ShuffleNet v2 unit on c channels (8×8 maps):
    /// `x → halves (a, b); b → 1×1 → ReLU → dw 3×3 → 1×1 → ReLU; Concat(a, b) → Reshape →
    /// Transpose → Reshape → ·`.
    pub fn shuffle_unit(&mut self, x: &str, c: i64, how: Halves) -> String {
        let half = c / 2;
        let (a, b) = self.halves(x, c, how);
        let b = self.conv(&b, half, half, 1, 1);
        let b = self.relu(&b);
        let b = self.depthwise(&b, half, 3);
        let b = self.conv(&b, half, half, 1, 1);
        let b = self.relu(&b);
        let cat = self.concat(&[&a, &b]);
        let groups = self.ints(&[1, 2, half, 8, 8]);
        let r = self.node("Reshape", &[&cat, &groups], vec![]);
        let t = self.node(
            "Transpose",
            &[&r],
            vec![ints_attr("perm", &[0, 2, 1, 3, 4])],
        );
        let flat = self.ints(&[1, c, 8, 8]);
        self.node("Reshape", &[&t, &flat], vec![])
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
        self.concat(&refs)
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

    /// A VGG-like chain on a 3-channel input, (convs, channels) per stage:
    /// `input → [3×3 conv → ReLU]×n → MaxPool → [3×3 conv → ReLU]×n → … → ·`.
    pub fn plain_chain(stages: &[(usize, i64)]) -> GraphProto {
        let mut g = GraphBuilder::new(3);
        let mut x = "input".to_string();
        let mut cin = 3;
        for (s, &(n, c)) in stages.iter().enumerate() {
            if s > 0 {
                x = g.max_pool(&x);
            }
            for _ in 0..n {
                let y = g.conv(&x, cin, c, 3, 1);
                x = g.relu(&y);
                cin = c;
            }
        }
        g.finish(&x)
    }
}
