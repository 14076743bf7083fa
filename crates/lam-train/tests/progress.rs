//! `lam_train::progress`: the wrapper passes every item through unchanged,
//! keeps the length, survives an early break, and stays quiet under the
//! test harness (stderr is not a terminal) or when asked.

mod common;

use common::cpu;
use lam_train::prelude::*;

#[test]
fn progress_passes_items_through_and_keeps_the_length() -> Result<()> {
    let items: Vec<u32> = progress(0..7u32).desc("counting").collect();
    assert_eq!(items, (0..7).collect::<Vec<_>>());
    assert_eq!(progress(vec![1, 2, 3]).size_hint(), (3, Some(3)));
    // No length known: it counts.
    let evens: Vec<u32> = progress((0..10u32).filter(|v| v % 2 == 0))
        .quiet(true)
        .collect();
    assert_eq!(evens, vec![0, 2, 4, 6, 8]);
    // A loop that breaks early drops the bar without harm.
    for (i, _) in progress(0..100).enumerate() {
        if i == 3 {
            break;
        }
    }
    Ok(())
}

#[test]
fn progress_wraps_a_loader_epoch_with_a_message_handle() -> Result<()> {
    let dev = cpu();
    let x = Tensor::from_vec_i32((0..20).collect(), &[10, 2], &dev)?;
    let y = Tensor::from_vec_i32(vec![0, 1, 0, 1, 0, 1, 0, 1, 0, 1], &[10], &dev)?;
    let loader = DataLoader::new(TensorDataset::new(&x, &y)?, 4, &dev)?;
    let bar = progress(&loader).desc("epoch 1");
    assert_eq!(bar.size_hint(), (3, Some(3)));
    let shown = bar.handle();
    let mut seen = 0;
    for batch in bar {
        let (x, _) = batch?;
        seen += x.dims()[0];
        shown.set_message(format!("{seen} samples"));
    }
    assert_eq!(seen, 10);
    assert_eq!(
        loader.next_epoch(),
        1,
        "the wrapped pass was the loader's epoch 0"
    );
    Ok(())
}
