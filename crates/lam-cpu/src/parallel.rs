//! When and how an op splits its output across threads.
//!
//! Every parallel loop in lam-cpu is [`for_chunks`]: the output is cut into
//! chunks, each filled by the same closure, on rayon's pool when the op is
//! big enough to pay for waking threads and inline otherwise. Ops write each
//! output element once, so the result does not depend on the thread count.

use rayon::prelude::*;

/// Below this much work (roughly, input elements touched) an op runs on the
/// calling thread: waking the pool costs more than it saves.
pub(crate) const PAR_MIN_WORK: usize = 32 * 1024;

/// Chunk length for elementwise loops over contiguous data: large enough to
/// amortise scheduling, small enough to balance.
pub(crate) const CHUNK: usize = 4096;

/// Calls `fill(start, chunk)` for each consecutive `chunk_len`-element chunk
/// of `out` (the last may be shorter), `start` being the chunk's first index.
/// Runs in parallel when `work >= PAR_MIN_WORK`.
pub(crate) fn for_chunks<T, F>(out: &mut [T], chunk_len: usize, work: usize, fill: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    if chunk_len == 0 || out.is_empty() {
        return;
    }
    if work >= PAR_MIN_WORK && out.len() > chunk_len {
        // Tiny chunks (short rows) are grouped so each task has ~CHUNK elements.
        let min_len = CHUNK.div_ceil(chunk_len);
        out.par_chunks_mut(chunk_len)
            .enumerate()
            .with_min_len(min_len)
            .for_each(|(i, chunk)| fill(i * chunk_len, chunk));
    } else {
        out.chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, chunk)| fill(i * chunk_len, chunk));
    }
}

/// Calls `fill(i, item)` for each item of `items` — the output rows of an
/// op that writes several buffers, each item holding that row's slices of
/// them — in parallel when the whole op (`item_work` elements per item) is
/// big enough, in tasks of about [`CHUNK`] elements.
pub(crate) fn for_items<T, F>(items: &mut [T], item_work: usize, fill: F)
where
    T: Send,
    F: Fn(usize, &mut T) + Sync,
{
    let work = items.len().saturating_mul(item_work);
    if work >= PAR_MIN_WORK && items.len() > 1 {
        let min_len = CHUNK.div_ceil(item_work.max(1));
        items
            .par_iter_mut()
            .enumerate()
            .with_min_len(min_len)
            .for_each(|(i, item)| fill(i, item));
    } else {
        items
            .iter_mut()
            .enumerate()
            .for_each(|(i, item)| fill(i, item));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_output_in_both_modes() {
        for work in [0, PAR_MIN_WORK] {
            let mut out = vec![0usize; 10_001];
            for_chunks(&mut out, 7, work, |start, chunk| {
                for (j, o) in chunk.iter_mut().enumerate() {
                    *o = start + j;
                }
            });
            assert!(out.iter().enumerate().all(|(i, &o)| i == o));
        }
    }

    #[test]
    fn items_are_each_filled_once_in_both_modes() {
        for item_work in [1, PAR_MIN_WORK] {
            let mut items = vec![(0usize, 0usize); 300];
            for_items(&mut items, item_work, |i, item| {
                item.0 = i;
                item.1 += 1;
            });
            assert!(items
                .iter()
                .enumerate()
                .all(|(i, &(j, n))| i == j && n == 1));
        }
    }
}
