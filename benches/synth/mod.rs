//! Synthetic models of the sizes the benchmark needs, written with se-inject's own onnx module:
//! the convolution and matrix shapes of torchvision's ResNet-50 and VGG-16 (BatchNorm folded
//! into the convolutions, as the TorchScript exporter writes them) and a VGG-16 with wide
//! classifier layers whose weights exceed protobuf's 2 GB limit. Every weight is a view of one
//! buffer of small pseudo-random values, each starting at its own place, so generating them costs
//! the largest tensor's memory.

use bytes::Bytes;
use se_inject::onnx::proto::tensor_proto::DataType;
use se_inject::onnx::proto::OperatorSetIdProto;
use se_inject::onnx::{self, AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};
use std::path::Path;

/// The models the benchmark generates.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// torchvision ResNet-50: 25.6M parameters, weights inline (102 MB).
    ResNet50,
    /// torchvision VGG-16: 138M parameters, weights inline (553 MB).
    Vgg16,
    /// VGG-16 whose classifier is 16384 wide: 718M parameters in external data (2.9 GB).
    WideVgg,
}

impl Kind {
    /// Every model, smallest first.
    pub const ALL: [Kind; 3] = [Kind::ResNet50, Kind::Vgg16, Kind::WideVgg];

    /// A short name for tables and file names.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ResNet50 => "resnet50",
            Kind::Vgg16 => "vgg16",
            Kind::WideVgg => "vgg16-wide",
        }
    }
}

/// A graph under construction: nodes, weight shapes, a counter for fresh names.
struct Net {
    nodes: Vec<NodeProto>,
    weights: Vec<(String, Vec<i64>)>,
    count: usize,
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        r#type: Some(7),
        ..Default::default()
    }
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(i),
        r#type: Some(2),
        ..Default::default()
    }
}

impl Net {
    fn new() -> Self {
        Self {
            nodes: Vec::new(),
            weights: Vec::new(),
            count: 0,
        }
    }

    fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        self.count += 1;
        let name = format!("/{op}_{}", self.count);
        let out = format!("{name}_out");
        self.nodes.push(NodeProto {
            name: Some(name),
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute,
            ..Default::default()
        });
        out
    }

    fn weight(&mut self, dims: &[i64]) -> String {
        let name = format!("w{}", self.weights.len());
        self.weights.push((name.clone(), dims.to_vec()));
        name
    }

    /// k×k convolution with bias, `pad` on each side, then ReLU unless `relu` is false.
    fn conv(
        &mut self,
        x: &str,
        (cin, cout): (i64, i64),
        k: i64,
        stride: i64,
        relu: bool,
    ) -> String {
        let w = self.weight(&[cout, cin, k, k]);
        let b = self.weight(&[cout]);
        let p = k / 2;
        let attrs = vec![
            ints("kernel_shape", &[k, k]),
            ints("strides", &[stride, stride]),
            ints("pads", &[p, p, p, p]),
        ];
        let y = self.node("Conv", &[x, &w, &b], attrs);
        if relu {
            self.node("Relu", &[&y], vec![])
        } else {
            y
        }
    }

    fn max_pool(&mut self, x: &str, k: i64, stride: i64, pad: i64) -> String {
        let attrs = vec![
            ints("kernel_shape", &[k, k]),
            ints("strides", &[stride, stride]),
            ints("pads", &[pad, pad, pad, pad]),
        ];
        self.node("MaxPool", &[x], attrs)
    }

    /// Fully connected `cin → cout` (Gemm with transposed weight), then ReLU when asked.
    fn fc(&mut self, x: &str, cin: i64, cout: i64, relu: bool) -> String {
        let w = self.weight(&[cout, cin]);
        let b = self.weight(&[cout]);
        let y = self.node("Gemm", &[x, &w, &b], vec![int("transB", 1)]);
        if relu {
            self.node("Relu", &[&y], vec![])
        } else {
            y
        }
    }

    /// A torchvision bottleneck: 1×1 → 3×3 (stride here) → 1×1, projection when shapes change.
    fn bottleneck(&mut self, x: &str, cin: i64, width: i64, stride: i64) -> String {
        let cout = width * 4;
        let a = self.conv(x, (cin, width), 1, 1, true);
        let b = self.conv(&a, (width, width), 3, stride, true);
        let c = self.conv(&b, (width, cout), 1, 1, false);
        let short = if cin != cout || stride != 1 {
            self.conv(x, (cin, cout), 1, stride, false)
        } else {
            x.to_string()
        };
        let s = self.node("Add", &[&c, &short], vec![]);
        self.node("Relu", &[&s], vec![])
    }

    fn resnet50(&mut self) -> String {
        let x = self.conv("input", (3, 64), 7, 2, true);
        let mut x = self.max_pool(&x, 3, 2, 1);
        let mut cin = 64;
        for (stage, blocks) in [3, 4, 6, 3].into_iter().enumerate() {
            let width = 64 << stage;
            for i in 0..blocks {
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                x = self.bottleneck(&x, cin, width, stride);
                cin = width * 4;
            }
        }
        let p = self.node("GlobalAveragePool", &[&x], vec![]);
        let f = self.node("Flatten", &[&p], vec![int("axis", 1)]);
        self.fc(&f, 2048, 1000, false)
    }

    fn vgg16(&mut self, hidden: i64) -> String {
        let mut x = "input".to_string();
        let mut cin = 3;
        for (convs, c) in [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)] {
            for _ in 0..convs {
                x = self.conv(&x, (cin, c), 3, 1, true);
                cin = c;
            }
            x = self.max_pool(&x, 2, 2, 0);
        }
        let f = self.node("Flatten", &[&x], vec![int("axis", 1)]);
        let h = self.fc(&f, 512 * 7 * 7, hidden, true);
        let h = self.fc(&h, hidden, hidden, true);
        self.fc(&h, hidden, 1000, false)
    }
}

/// How far apart in the shared buffer tensors may start, in bytes: each starts elsewhere, so no
/// two hold the same values (a runtime may merge equal constants, which would understate its
/// memory).
const SPREAD: usize = 4 << 20;

/// `n` bytes of little-endian f32 values spread evenly in [-0.01, 0.01), from a fixed seed.
fn pool(n: usize) -> Bytes {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut raw = Vec::with_capacity(n + 4);
    while raw.len() < n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let v = ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.02;
        raw.extend_from_slice(&v.to_le_bytes());
    }
    raw.truncate(n);
    Bytes::from(raw)
}

/// Writes the model `kind` to `path` (and `<path>.data` for the wide VGG); returns the bytes of
/// weights written.
pub fn write(kind: Kind, path: &Path) -> anyhow::Result<u64> {
    let mut net = Net::new();
    let y = match kind {
        Kind::ResNet50 => net.resnet50(),
        Kind::Vgg16 => net.vgg16(4096),
        Kind::WideVgg => net.vgg16(16384),
    };
    let sizes: Vec<usize> = net
        .weights
        .iter()
        .map(|(_, d)| d.iter().product::<i64>() as usize * 4)
        .collect();
    let values = pool(sizes.iter().copied().max().unwrap_or(0) + SPREAD);
    let initializer: Vec<TensorProto> = net
        .weights
        .iter()
        .zip(&sizes)
        .enumerate()
        .map(|(i, ((name, dims), &len))| {
            let start = 4 * (i * 7919 % (SPREAD / 4));
            TensorProto {
                name: Some(name.clone()),
                dims: dims.clone(),
                data_type: Some(DataType::Float as i32),
                raw_data: Some(values.slice(start..start + len)),
                ..Default::default()
            }
        })
        .collect();
    let float = onnx::tensor::ElemType::FLOAT;
    let graph = GraphProto {
        name: Some(kind.name().into()),
        node: net.nodes,
        initializer,
        input: vec![onnx::tensor_value_info("input", float, &[1, 3, 224, 224])],
        output: vec![onnx::tensor_value_info(&y, float, &[1, 1000])],
        ..Default::default()
    };
    let proto = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        producer_name: Some("se-inject-bench".into()),
        graph: Some(graph),
        ..Default::default()
    };
    // Built in memory: it was read from nowhere, which is not where it is written.
    let mut model = onnx::io::from_proto(proto, &path.with_extension("in-memory"))?;
    if matches!(kind, Kind::WideVgg) {
        model.storage = onnx::Storage::External;
        model.external_tensors = net.weights.into_iter().map(|(n, _)| n).collect();
    }
    onnx::save(&model, path)?;
    Ok(sizes.iter().map(|&s| s as u64).sum())
}
