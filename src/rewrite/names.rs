//! Unique name generation against every name already in the graph.

use std::collections::HashSet;

/// Hands out names no node, tensor or initializer of the graph uses yet.
pub struct Names {
    used: HashSet<String>,
}

impl Names {
    pub fn new(used: HashSet<String>) -> Self {
        Self { used }
    }

    /// `base` if it is free, else `base_2`, `base_3`, ...; the name returned is then taken.
    pub fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 2;
        while self.used.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.used.insert(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avoids_taken_names() {
        let mut n = Names::new(["a".to_string(), "a_2".to_string()].into());
        assert_eq!(n.fresh("a"), "a_3");
        assert_eq!(n.fresh("b"), "b");
        assert_eq!(n.fresh("b"), "b_2");
    }
}
