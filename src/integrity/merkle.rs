//! The RFC 6962 Merkle tree (as RFC 9162 restates it), with SHA-256: leaf and
//! node hashes, the tree head, inclusion and consistency proofs and their
//! checks, and the right edge of a tree, which grows by one leaf in O(log n)
//! and is what a sealer keeps between appends.
//!
//! The functions that take every leaf hash (`root`, `inclusion_proof`,
//! `consistency_proof`) are the definitions written out; they serve tests,
//! `verify` over a whole log and small proofs. Stored subtree hashes will
//! serve large ones.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: of a leaf, a node or a whole tree.
pub type Hash = [u8; 32];

/// The hash of a leaf: `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// The hash of an inner node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The head of the empty tree: the hash of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two below `n` (n ≥ 2): where the tree splits.
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The tree head over `leaves` (leaf hashes, in log order): MTH(D[n]).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [one] => *one,
        _ => {
            let k = split(leaves.len());
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` in the tree over `leaves`: PATH(m, D[n]),
/// nearest sibling first. `None` when `index` is not a leaf of it.
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    fn path(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
        if d.len() <= 1 {
            return;
        }
        let k = split(d.len());
        if m < k {
            path(m, &d[..k], out);
            out.push(root(&d[k..]));
        } else {
            path(m - k, &d[k..], out);
            out.push(root(&d[..k]));
        }
    }
    (index < leaves.len()).then(|| {
        let mut out = Vec::new();
        path(index, leaves, &mut out);
        out
    })
}

/// The head of leaves `from..to` of a tree, MTH(D[from:to]), where `from`
/// is a multiple of the largest power of two below `to - from` (as in every
/// range the RFC 6962 recursion meets), from the heads of its perfect
/// subtrees, which `subtree(level, index)` gives.
pub fn range_head<E>(
    from: u64,
    to: u64,
    subtree: &mut impl FnMut(u32, u64) -> Result<Hash, E>,
) -> Result<Hash, E> {
    let n = to - from;
    if n.is_power_of_two() && from.is_multiple_of(n) {
        let level = n.trailing_zeros();
        return subtree(level, from >> level);
    }
    if n == 0 {
        return Ok(empty_root());
    }
    let k = split_u64(n);
    let left = range_head(from, from + k, subtree)?;
    let right = range_head(from + k, to, subtree)?;
    Ok(node_hash(&left, &right))
}

/// The largest power of two below `n` (n ≥ 2).
fn split_u64(n: u64) -> u64 {
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// The audit path of leaf `index` in the tree of `size` leaves, PATH(m,
/// D[n]), nearest sibling first, from the heads of perfect subtrees that
/// `subtree(level, index)` gives: O(log n) of them. `None` when `index` is
/// not a leaf of it.
pub fn inclusion_path<E>(
    index: u64,
    size: u64,
    subtree: &mut impl FnMut(u32, u64) -> Result<Hash, E>,
) -> Result<Option<Vec<Hash>>, E> {
    fn path<E>(
        m: u64,
        from: u64,
        to: u64,
        subtree: &mut impl FnMut(u32, u64) -> Result<Hash, E>,
        out: &mut Vec<Hash>,
    ) -> Result<(), E> {
        if to - from <= 1 {
            return Ok(());
        }
        let k = split_u64(to - from);
        if m < from + k {
            path(m, from, from + k, subtree, out)?;
            out.push(range_head(from + k, to, subtree)?);
        } else {
            path(m, from + k, to, subtree, out)?;
            out.push(range_head(from, from + k, subtree)?);
        }
        Ok(())
    }
    if index >= size {
        return Ok(None);
    }
    let mut out = Vec::new();
    path(index, 0, size, subtree, &mut out)?;
    Ok(Some(out))
}

/// Whether `path` proves that `leaf` (a leaf hash) is leaf `index` of the
/// tree of `size` leaves whose head is `root` (RFC 9162, 2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// The proof that the tree over the first `old_size` of `leaves` is a prefix
/// of the tree over all of them: PROOF(m, D[n]). `None` unless
/// 0 < old_size ≤ n.
pub fn consistency_proof(old_size: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    fn subproof(m: usize, d: &[Hash], whole: bool, out: &mut Vec<Hash>) {
        if m == d.len() {
            if !whole {
                out.push(root(d));
            }
            return;
        }
        let k = split(d.len());
        if m <= k {
            subproof(m, &d[..k], whole, out);
            out.push(root(&d[k..]));
        } else {
            subproof(m - k, &d[k..], false, out);
            out.push(root(&d[..k]));
        }
    }
    (old_size > 0 && old_size <= leaves.len()).then(|| {
        let mut out = Vec::new();
        subproof(old_size, leaves, true, &mut out);
        out
    })
}

/// Whether `proof` shows that the tree of `old_size` leaves with head
/// `old_root` is a prefix of the tree of `new_size` leaves with head
/// `new_root` (RFC 9162, 2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size == 0 || old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    let mut hashes: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        hashes.push(*old_root);
    }
    hashes.extend_from_slice(proof);
    let Some((first, rest)) = hashes.split_first() else {
        return false;
    };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *old_root && sr == *new_root && s == 0
}

/// The right edge of a tree: the heads of its perfect subtrees, largest
/// (leftmost) first, one for each bit set in its size. Enough to append a
/// leaf and to compute the tree head, in O(log n) each, without the leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    subtrees: Vec<Hash>,
}

impl Frontier {
    /// The frontier of a tree of `size` leaves, from its stored subtree
    /// heads; `None` when their number does not fit the size.
    pub fn from_parts(size: u64, subtrees: Vec<Hash>) -> Option<Self> {
        (subtrees.len() == size.count_ones() as usize).then_some(Self { size, subtrees })
    }

    /// How many leaves the tree has.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The heads of its perfect subtrees, largest first.
    pub fn subtrees(&self) -> &[Hash] {
        &self.subtrees
    }

    /// Appends a leaf (its hash).
    pub fn push(&mut self, leaf: Hash) {
        self.push_noting(leaf, |_, _, _| {});
    }

    /// Appends a leaf, telling `completed` each perfect subtree it completes
    /// as (level, index, head), smallest first: the subtree of level `l` and
    /// index `i` holds leaves `i * 2^l .. (i + 1) * 2^l` (level 0: the leaf).
    pub fn push_noting(&mut self, leaf: Hash, mut completed: impl FnMut(u32, u64, &Hash)) {
        let index = self.size;
        let mut carry = leaf;
        let mut size = self.size;
        let mut level = 0;
        completed(level, index, &carry);
        // Each trailing one bit of the size is a subtree as large as the one
        // being carried: the two merge.
        while size & 1 == 1 {
            let left = self
                .subtrees
                .pop()
                .expect("one subtree per bit of the size");
            carry = node_hash(&left, &carry);
            size >>= 1;
            level += 1;
            completed(level, index >> level, &carry);
        }
        self.subtrees.push(carry);
        self.size += 1;
    }

    /// The tree head.
    pub fn root(&self) -> Hash {
        let mut heads = self.subtrees.iter().rev();
        match heads.next() {
            None => empty_root(),
            Some(smallest) => heads.fold(*smallest, |right, left| node_hash(left, &right)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The perfect subtrees a frontier reports completing, by (level, index).
    fn noted_subtrees(leaves: &[Hash]) -> std::collections::HashMap<(u32, u64), Hash> {
        let mut noted = std::collections::HashMap::new();
        let mut tree = Frontier::default();
        for leaf in leaves {
            tree.push_noting(*leaf, |level, index, head| {
                assert!(
                    noted.insert((level, index), *head).is_none(),
                    "each subtree once"
                );
            });
        }
        noted
    }

    #[test]
    fn paths_from_noted_subtrees_are_the_paths_from_the_leaves() {
        let leaves: Vec<Hash> = (0..300u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for size in [1usize, 2, 3, 7, 8, 9, 64, 255, 256, 257, 300] {
            let noted = noted_subtrees(&leaves[..size]);
            let mut subtree =
                |level: u32, index: u64| noted.get(&(level, index)).copied().ok_or((level, index));
            assert_eq!(
                range_head(0, size as u64, &mut subtree),
                Ok(root(&leaves[..size])),
                "size {size}"
            );
            for index in [0, size / 3, size / 2, size - 1] {
                let path = inclusion_path(index as u64, size as u64, &mut subtree).unwrap();
                assert_eq!(
                    path,
                    inclusion_proof(index, &leaves[..size]),
                    "{index} of {size}"
                );
            }
            assert_eq!(
                inclusion_path(size as u64, size as u64, &mut subtree),
                Ok(None)
            );
        }
    }

    /// The leaves of the test vectors of RFC 6962's reference implementation
    /// (certificate-transparency's merkle_tree_test), and the tree heads of
    /// their first 1..=8 (checked here against a Python rendering of the
    /// RFC's definition as well).
    fn vector_leaves() -> Vec<Vec<u8>> {
        vec![
            vec![],
            vec![0x00],
            vec![0x10],
            vec![0x20, 0x21],
            vec![0x30, 0x31],
            vec![0x40, 0x41, 0x42, 0x43],
            (0x50..0x58).collect(),
            (0x60..0x70).collect(),
        ]
    }

    const VECTOR_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("event {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn tree_heads_match_the_reference_vectors() {
        let hashes: Vec<Hash> = vector_leaves().iter().map(|l| leaf_hash(l)).collect();
        let mut frontier = Frontier::default();
        for (n, want) in VECTOR_ROOTS.iter().enumerate() {
            assert_eq!(hex::encode(root(&hashes[..=n])), *want, "size {}", n + 1);
            frontier.push(hashes[n]);
            assert_eq!(
                hex::encode(frontier.root()),
                *want,
                "frontier, size {}",
                n + 1
            );
        }
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Frontier::default().root(), empty_root());
    }

    #[test]
    fn the_frontier_grows_to_the_same_head_and_keeps_one_subtree_per_bit() {
        let all = leaves(300);
        let mut frontier = Frontier::default();
        for n in 1..=all.len() {
            frontier.push(all[n - 1]);
            assert_eq!(frontier.root(), root(&all[..n]), "size {n}");
            assert_eq!(frontier.subtrees().len(), n.count_ones() as usize);
            let again = Frontier::from_parts(frontier.size(), frontier.subtrees().to_vec());
            assert_eq!(again.as_ref(), Some(&frontier));
        }
        assert_eq!(Frontier::from_parts(3, vec![[0; 32]]), None);
    }

    #[test]
    fn every_leaf_is_proven_in_every_tree_and_nothing_else_is() {
        let all = leaves(33);
        for n in 1..=all.len() {
            let head = root(&all[..n]);
            for m in 0..n {
                let path = inclusion_proof(m, &all[..n]).unwrap();
                let (i, size) = (m as u64, n as u64);
                assert!(
                    verify_inclusion(&all[m], i, size, &path, &head),
                    "{m} of {n}"
                );
                // Another leaf, another position, a position past the end,
                // another head, a changed or shortened path: all fail. (The
                // size itself is bound by the signed checkpoint that carries
                // the head: some proofs also fit a larger size claimed with
                // the same head.)
                let other = leaf_hash(b"forged");
                assert!(!verify_inclusion(&other, i, size, &path, &head));
                if n > 1 {
                    assert!(!verify_inclusion(
                        &all[m],
                        (i + 1) % size,
                        size,
                        &path,
                        &head
                    ));
                }
                assert!(!verify_inclusion(&all[m], size, size, &path, &head));
                assert!(!verify_inclusion(&all[m], i, size, &path, &[0; 32]));
                if let Some(first) = path.first() {
                    let mut changed = path.clone();
                    changed[0] = node_hash(first, first);
                    assert!(!verify_inclusion(&all[m], i, size, &changed, &head));
                    assert!(!verify_inclusion(&all[m], i, size, &path[1..], &head));
                }
            }
            assert_eq!(inclusion_proof(n, &all[..n]), None);
        }
    }

    #[test]
    fn every_prefix_is_proven_consistent_and_a_rewritten_one_is_not() {
        let all = leaves(33);
        let mut rewritten = all.clone();
        rewritten[4] = leaf_hash(b"changed");
        for n in 1..=all.len() {
            let new_root = root(&all[..n]);
            for m in 1..=n {
                let proof = consistency_proof(m, &all[..n]).unwrap();
                let old_root = root(&all[..m]);
                let (old, new) = (m as u64, n as u64);
                assert!(
                    verify_consistency(old, new, &old_root, &new_root, &proof),
                    "{m} -> {n}"
                );
                if m > 4 {
                    let other = root(&rewritten[..m]);
                    assert!(!verify_consistency(old, new, &other, &new_root, &proof));
                }
                assert!(!verify_consistency(old, new, &old_root, &[0; 32], &proof));
                if m < n {
                    assert!(!verify_consistency(new, old, &new_root, &old_root, &proof));
                    assert!(!verify_consistency(
                        old,
                        new,
                        &old_root,
                        &new_root,
                        &proof[1..]
                    ));
                }
            }
            assert_eq!(consistency_proof(0, &all[..n]), None);
            assert_eq!(consistency_proof(n + 1, &all[..n]), None);
        }
    }
}
