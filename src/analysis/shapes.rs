//! Static shapes of the feature maps, propagated from the input shape through the ops CNNs use
//! (the report counts multiply-accumulates from them). Symbolic input dimensions take 1 unless a
//! concrete input shape is given. The rules per op family are in `shapes/ops.rs`.

mod ops;

use super::features::Features;
use crate::graph::GraphView;
use crate::onnx::{attr_i, attr_ints, describe_node, NodeProto};
use ops::Node;
use std::collections::HashMap;

/// Shapes per feature-map tensor.
pub struct Shapes {
    map: HashMap<String, Vec<usize>>,
    /// Why shapes stop, when they do: the first node whose output shape could not be derived.
    pub stopped_at: Option<String>,
}

/// The product of `dims`, or None on overflow (hostile dims must not wrap or panic).
pub(crate) fn product(dims: impl IntoIterator<Item = usize>) -> Option<usize> {
    dims.into_iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(d))
}

fn axis_of(a: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if a < 0 { a + r } else { a };
    (0..r).contains(&a).then_some(a as usize)
}

fn broadcast(shapes: &[Vec<usize>]) -> Option<Vec<usize>> {
    let rank = shapes.iter().map(Vec::len).max()?;
    let mut out = vec![1usize; rank];
    for s in shapes {
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[rank - s.len() + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    Some(out)
}

/// Output spatial size of a sliding window, as ONNX defines it for Conv and pooling.
fn window(node: &NodeProto, input: &[usize], kernel: &[usize]) -> Option<Vec<usize>> {
    let n = kernel.len();
    let spatial = input.get(2..)?;
    if spatial.len() != n {
        return None;
    }
    let ints = |name: &str, default: i64| -> Vec<i64> {
        attr_ints(node, name).map_or_else(|| vec![default; n], <[i64]>::to_vec)
    };
    let (strides, dilations) = (ints("strides", 1), ints("dilations", 1));
    let pads = attr_ints(node, "pads").map_or_else(|| vec![0; 2 * n], <[i64]>::to_vec);
    let auto_pad = node
        .attribute
        .iter()
        .find(|a| a.name.as_deref() == Some("auto_pad"))
        .and_then(|a| a.s.as_deref())
        .unwrap_or(b"NOTSET");
    let ceil = attr_i(node, "ceil_mode").unwrap_or(0) == 1;
    (0..n)
        .map(|i| {
            // In i128: hostile attributes (pads or strides near i64::MAX) must not overflow.
            let (x, k) = (spatial[i] as i128, kernel[i] as i128);
            let s = i128::from(*strides.get(i)?.max(&1));
            let d = i128::from(*dilations.get(i)?.max(&1));
            let out = match auto_pad {
                b"SAME_UPPER" | b"SAME_LOWER" => (x + s - 1) / s,
                b"VALID" => (x - d * (k - 1) - 1).div_euclid(s) + 1,
                _ => {
                    let pad = i128::from(*pads.get(i)?) + i128::from(*pads.get(i + n)?);
                    let span = x + pad - d * (k - 1) - 1;
                    if ceil {
                        (span + s - 1).div_euclid(s) + 1
                    } else {
                        span.div_euclid(s) + 1
                    }
                }
            };
            usize::try_from(out).ok().filter(|&o| o > 0)
        })
        .collect()
}

impl Shapes {
    /// Propagates shapes from the single feature input; `input_shape` replaces its declared
    /// shape (symbolic dims are 1 otherwise).
    pub fn infer(view: &GraphView, feats: &Features, input_shape: Option<&[usize]>) -> Self {
        let mut map: HashMap<String, Vec<usize>> = HashMap::new();
        let mut stopped_at = None;
        for i in view.feature_inputs() {
            let name = view.graph.input[i].name.clone().unwrap_or_default();
            let declared = view.input_dims(i);
            let shape = match (input_shape, declared) {
                (Some(s), _) => Some(s.to_vec()),
                (None, Some(d)) => Some(
                    d.iter()
                        .map(|v| v.map_or(1, |v| usize::try_from(v).unwrap_or(1)))
                        .collect(),
                ),
                (None, None) => None,
            };
            if let Some(s) = shape {
                map.insert(name, s);
            }
        }
        for &n in &view.topo {
            let node = view.node(n);
            if !node.output.first().is_some_and(|o| feats.is_feature(o)) {
                continue;
            }
            let at = Node {
                view,
                feats,
                map: &map,
                node,
            };
            match at.output_shapes() {
                Some(outs) => {
                    for (o, s) in node.output.iter().zip(outs) {
                        map.insert(o.clone(), s);
                    }
                }
                None => {
                    stopped_at.get_or_insert_with(|| describe_node(node));
                }
            }
        }
        Self { map, stopped_at }
    }

    /// Shape of tensor `name`, if derived.
    pub fn get(&self, name: &str) -> Option<&[usize]> {
        self.map.get(name).map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::AttributeProto;

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            ints: v.to_vec(),
            ..Default::default()
        }
    }

    fn node(attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            attribute: attrs,
            ..Default::default()
        }
    }

    #[test]
    fn sliding_windows_follow_the_onnx_formulas() {
        // 7×7 stride 2 pad 3 on 224: (224 + 6 − 7) / 2 + 1 = 112.
        let conv = node(vec![ints("strides", &[2, 2]), ints("pads", &[3, 3, 3, 3])]);
        assert_eq!(
            window(&conv, &[1, 3, 224, 224], &[7, 7]),
            Some(vec![112, 112])
        );
        // 3×3 stride 2 pad 1 max pool on 112: 56.
        let pool = node(vec![ints("strides", &[2, 2]), ints("pads", &[1, 1, 1, 1])]);
        assert_eq!(
            window(&pool, &[1, 64, 112, 112], &[3, 3]),
            Some(vec![56, 56])
        );
        // ceil_mode: 3×3 stride 2 on 14 gives 7 rather than 6.
        let mut ceil = node(vec![ints("strides", &[2, 2])]);
        ceil.attribute.push(AttributeProto {
            name: Some("ceil_mode".into()),
            i: Some(1),
            ..Default::default()
        });
        assert_eq!(window(&ceil, &[1, 8, 14, 14], &[3, 3]), Some(vec![7, 7]));
        // SAME_UPPER: ceil(15 / 2) = 8; dilation 2 on a 3×3 without pads: 15 − 4 = 11.
        let mut same = node(vec![ints("strides", &[2, 2])]);
        same.attribute.push(AttributeProto {
            name: Some("auto_pad".into()),
            s: Some(b"SAME_UPPER".to_vec()),
            ..Default::default()
        });
        assert_eq!(window(&same, &[1, 8, 15, 15], &[3, 3]), Some(vec![8, 8]));
        let dilated = node(vec![ints("dilations", &[2, 2])]);
        assert_eq!(
            window(&dilated, &[1, 8, 15, 15], &[3, 3]),
            Some(vec![11, 11])
        );
        // A kernel larger than the padded input has no output.
        assert_eq!(window(&node(vec![]), &[1, 8, 2, 2], &[3, 3]), None);
    }

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(
            broadcast(&[vec![1, 8, 4, 4], vec![1, 8, 1, 1]]),
            Some(vec![1, 8, 4, 4])
        );
        assert_eq!(
            broadcast(&[vec![1, 8, 4, 4], vec![]]),
            Some(vec![1, 8, 4, 4])
        );
        assert_eq!(broadcast(&[vec![8, 4], vec![3, 4]]), None);
    }
}
