//! What a CSV field's text means: a feature value (or a missing one), a
//! class label, a regression target.

use super::Missing;

/// The spellings of a missing value: pandas' default `na_values`. Any
/// other spelling that reads as NaN (`NAN`, `nAn`) is missing too.
pub(crate) const MISSING: [&str; 19] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

/// A feature: a finite number, or NaN for a missing value when `missing`
/// allows it; otherwise a message saying what the field holds.
pub(crate) fn feature(field: &str, missing: Missing) -> Result<f32, String> {
    match (number(field)?, missing) {
        (Some(v), _) => Ok(v),
        (None, Missing::Nan) => Ok(f32::NAN),
        (None, Missing::Error) => Err(format!(
            "missing value {:?} (CsvOptions::missing(Missing::Nan) reads it as NaN, \
             to fill with preprocess::Imputer)",
            field.trim()
        )),
    }
}

/// A regression target: a finite number (never missing).
pub(crate) fn target_value(field: &str) -> Result<f32, String> {
    number(field)?.ok_or_else(|| format!("missing target value {:?}", field.trim()))
}

/// A class label: an integer within `i32`, read from the text itself (a
/// detour through `f32` would turn 16777217 into 16777216). A whole number
/// written as a decimal (`3.0`, `1e2`) is accepted.
pub(crate) fn class(field: &str) -> Result<i32, String> {
    let t = field.trim();
    let whole = match t.parse::<i64>() {
        Ok(v) => v,
        Err(_) if MISSING.contains(&t) => return Err(format!("missing class label {t:?}")),
        Err(_) => match t.parse::<f64>() {
            // Within ±2^63, so the cast is exact; beyond, it cannot fit anyway.
            Ok(v) if v.fract() == 0.0 && v.abs() < 9.2e18 => v as i64,
            Ok(v) if v.fract() == 0.0 => i64::MAX,
            Ok(v) if v.is_nan() => return Err(format!("missing class label {t:?}")),
            Ok(_) => return Err(format!("class label {t} is not an integer")),
            Err(_) => return Err(format!("class label {t:?} is not a number")),
        },
    };
    i32::try_from(whole).map_err(|_| format!("class label {t} does not fit in int32"))
}

/// `value` as a class label: a whole number within `i32` (an `as` cast
/// would turn 2^31 into `i32::MAX` without a word). For labels that arrive
/// as floats (IDX files).
pub(crate) fn class_label(value: f32) -> Option<i32> {
    let limit = 2f32.powi(31);
    (value.fract() == 0.0 && (-limit..limit).contains(&value)).then_some(value as i32)
}

/// A field as a finite number, `None` when it is missing.
fn number(field: &str) -> Result<Option<f32>, String> {
    let t = field.trim();
    // Numbers first: no spelling of a missing value reads as a finite one.
    match t.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        Ok(v) if v.is_nan() => Ok(None),
        Ok(_) if t.trim_start_matches(['+', '-']).starts_with(['i', 'I']) => {
            Err(format!("{t} is not a finite number"))
        }
        Ok(_) => Err(format!("{t} is beyond the float32 range")),
        Err(_) if MISSING.contains(&t) => Ok(None),
        Err(_) => Err(format!("{t:?} is not a number")),
    }
}
