//! Which gradients travel together: parameters are packed into buckets
//! (Horovod's tensor fusion, DDP's buckets) in the reverse of the model's
//! parameter order — roughly the order backward produces their gradients —
//! so the first bucket fills, and is sent, while backward still runs.
//!
//! A bucket holds up to `cap` bytes of gradients (a parameter larger than
//! that gets a bucket of its own); the first holds up to `first_cap` (DDP
//! keeps it small, 1 MB, so communication starts early). Its buffer is the
//! members' gradients, flattened one after another, then one flag per member
//! that says whether this replica produced that gradient (1) or sends zeros
//! (0), so replicas learn which parameters no replica used.

/// The bucket layout of a model's parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Buckets {
    /// Per bucket, the parameter indices (into the model's parameter list)
    /// in buffer order.
    pub(crate) members: Vec<Vec<usize>>,
    /// Per parameter, its bucket and its offset in that bucket's buffer.
    pub(crate) place: Vec<(usize, usize)>,
    /// Per bucket, the number of gradient values (the flags follow them).
    pub(crate) values: Vec<usize>,
}

impl Buckets {
    /// The layout of parameters with `numels` elements each (in model
    /// order), with caps in bytes.
    pub(crate) fn assign(numels: &[usize], first_cap: usize, cap: usize) -> Buckets {
        let mut members: Vec<Vec<usize>> = Vec::new();
        let mut values: Vec<usize> = Vec::new();
        let mut place = vec![(0, 0); numels.len()];
        for i in (0..numels.len()).rev() {
            let bytes = numels[i] * 4;
            // The cap of the bucket being filled: the first one's, or the rest's.
            let limit = if members.len() == 1 { first_cap } else { cap };
            let full = values
                .last()
                .is_none_or(|&v| v > 0 && (v * 4 + bytes) > limit);
            if full {
                members.push(Vec::new());
                values.push(0);
            }
            let b = members.len() - 1;
            place[i] = (b, values[b]);
            members[b].push(i);
            values[b] += numels[i];
        }
        Buckets {
            members,
            place,
            values,
        }
    }

    /// The number of buckets.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// The length of bucket `b`'s buffer: its values, then one flag per member.
    pub(crate) fn buffer_len(&self, b: usize) -> usize {
        self.values[b] + self.members[b].len()
    }
}

#[cfg(test)]
mod tests {
    use super::Buckets;

    #[test]
    fn buckets_fill_in_reverse_parameter_order_up_to_their_caps() {
        // Parameters of 10, 20, 30, 40 values (40..160 bytes); the first
        // bucket capped at 100 bytes (the last parameter, 160 bytes, is
        // alone in it), the rest at 200 (120 + 80 fit, 40 more do not).
        let b = Buckets::assign(&[10, 20, 30, 40], 100, 200);
        assert_eq!(b.members, vec![vec![3], vec![2, 1], vec![0]]);
        assert_eq!(b.values, vec![40, 50, 10]);
        assert_eq!(b.place, vec![(2, 0), (1, 30), (1, 0), (0, 0)]);
        assert_eq!(b.buffer_len(1), 52);
    }

    #[test]
    fn a_parameter_larger_than_the_cap_gets_a_bucket_of_its_own() {
        let b = Buckets::assign(&[1000, 2, 2], 16, 16);
        assert_eq!(b.members, vec![vec![2, 1], vec![0]]);
        assert_eq!(b.len(), 2);
    }
}
