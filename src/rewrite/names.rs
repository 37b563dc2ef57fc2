//! Unique name generation against every name already in the graph.

use std::collections::{HashMap, HashSet};

/// Hands out names no node, tensor or initializer of the graph uses yet.
pub struct Names {
    used: HashSet<String>,
    /// Per base name, the last suffix handed out (1: the base itself); every smaller one is
    /// taken, so a base asked for again and again costs no rescan.
    next: HashMap<String, usize>,
}

impl Names {
    pub fn new(used: HashSet<String>) -> Self {
        Self {
            used,
            next: HashMap::new(),
        }
    }

    /// `base` if it is free, else `base_2`, `base_3`, ...; the name returned is then taken.
    pub fn fresh(&mut self, base: &str) -> String {
        let spelled = |k: usize| match k {
            1 => base.to_string(),
            k => format!("{base}_{k}"),
        };
        let mut k = self.next.get(base).copied().unwrap_or(1);
        let mut name = spelled(k);
        while self.used.contains(&name) {
            k += 1;
            name = spelled(k);
        }
        self.next.insert(base.to_string(), k);
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

    /// The same base asked for many times: each call starts where the last one stopped, and
    /// skips names taken in between.
    #[test]
    fn repeated_bases_continue_their_count() {
        let mut n = Names::new(["c_3".to_string()].into());
        let names: Vec<String> = (0..4).map(|_| n.fresh("c")).collect();
        assert_eq!(names, ["c", "c_2", "c_4", "c_5"]);
        let mut many = Names::new(HashSet::new());
        let last = (0..20_000).map(|_| many.fresh("block/se")).last();
        assert_eq!(last.as_deref(), Some("block/se_20000"));
    }
}
