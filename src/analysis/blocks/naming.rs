//! Readable block names from the exporters' scopes.

use crate::onnx::{node_name, NodeProto};

/// The merge node's scoped name: its own name when it carries a scope (TorchScript exporter:
/// `/layer1/layer1.0/Add`), else the module path the dynamo exporter records in the node's
/// `pkg.torch.onnx.name_scopes` metadata (`['', 'layer1', 'layer1.0', 'add']` gives
/// `layer1.0/add`), else the bare node name.
pub(super) fn scope_name(node: &NodeProto) -> String {
    let name = node_name(node);
    if name.contains('/') {
        return name.to_string();
    }
    let scopes = node
        .metadata_props
        .iter()
        .find(|p| p.key.as_deref() == Some("pkg.torch.onnx.name_scopes"))
        .and_then(|p| p.value.as_deref());
    if let Some(list) = scopes {
        let parts: Vec<&str> = list
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(|s| s.trim().trim_matches(|c| c == '\'' || c == '"'))
            .filter(|s| !s.is_empty())
            .collect();
        if parts.len() >= 2 {
            return format!("{}/{}", parts[parts.len() - 2], parts[parts.len() - 1]);
        }
    }
    name.to_string()
}

/// A readable block name from its merge node's name: `/layer1/layer1.0/Add` gives
/// `/layer1/layer1.0`; names without a scope are kept; an unnamed merge gives `block<n>`.
pub fn block_name(merge_name: &str, index: usize) -> String {
    if merge_name.is_empty() {
        return format!("block{index}");
    }
    match merge_name.rsplit_once('/') {
        Some((scope, _)) if !scope.is_empty() => scope.to_string(),
        _ => merge_name.to_string(),
    }
}

/// The name of the block whose merge is `node`, at index `index`.
pub(super) fn merge_block_name(node: &NodeProto, index: usize) -> String {
    block_name(&scope_name(node), index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_blocks_from_merge_scope() {
        assert_eq!(block_name("/layer1/layer1.0/Add", 3), "/layer1/layer1.0");
        assert_eq!(block_name("node_add_12", 3), "node_add_12");
        assert_eq!(block_name("", 3), "block3");
        assert_eq!(block_name("/Add", 3), "/Add");
    }

    #[test]
    fn dynamo_scopes_name_the_module() {
        let node = NodeProto {
            name: Some("node_add_3".into()),
            metadata_props: vec![crate::onnx::proto::StringStringEntryProto {
                key: Some("pkg.torch.onnx.name_scopes".into()),
                value: Some("['', 'layer1', 'layer1.0', 'add']".into()),
            }],
            ..Default::default()
        };
        assert_eq!(scope_name(&node), "layer1.0/add");
        assert_eq!(merge_block_name(&node, 3), "layer1.0");
    }
}
