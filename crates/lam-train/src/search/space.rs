//! [`Space`]: the hyper-parameters a search may choose, each a list of
//! values (grid and random search) or a distribution (random search only),
//! and [`Params`]: one choice of all of them.

use std::fmt;

use lam_core::rng::Generator;
use lam_core::{Error, Result};

use crate::seed::derive_seed;

/// One hyper-parameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A real number (learning rate, dropout, weight decay).
    Float(f64),
    /// A whole number (hidden size, batch size, epochs).
    Int(i64),
    /// A word (an optimizer's name).
    Text(String),
    /// A switch.
    Bool(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Float(x) => write!(f, "{x}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Text(s) => write!(f, "{s}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Value {
        Value::Float(x)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<usize> for Value {
    fn from(i: usize) -> Value {
        Value::Int(i as i64)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_string())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

/// Where one hyper-parameter's values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// These values (a grid axis; random search picks one uniformly).
    Values(Vec<Value>),
    /// Uniform in `[low, high)`.
    Uniform { low: f64, high: f64 },
    /// Log-uniform in `[low, high)` (scipy's `loguniform`): learning rates,
    /// regularisation strengths.
    LogUniform { low: f64, high: f64 },
    /// A whole number uniform in `low..=high`.
    IntRange { low: i64, high: i64 },
}

/// A declared search space, in declaration order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Space(Vec<(String, Domain)>);

impl Space {
    /// An empty space.
    pub fn new() -> Space {
        Space::default()
    }

    /// `name` takes one of `values`.
    pub fn values<V: Into<Value>>(self, name: &str, values: impl IntoIterator<Item = V>) -> Space {
        self.with(
            name,
            Domain::Values(values.into_iter().map(Into::into).collect()),
        )
    }

    /// `name` is uniform in `[low, high)`.
    pub fn uniform(self, name: &str, low: f64, high: f64) -> Space {
        self.with(name, Domain::Uniform { low, high })
    }

    /// `name` is log-uniform in `[low, high)`.
    pub fn log_uniform(self, name: &str, low: f64, high: f64) -> Space {
        self.with(name, Domain::LogUniform { low, high })
    }

    /// `name` is a whole number in `low..=high`.
    pub fn int_range(self, name: &str, low: i64, high: i64) -> Space {
        self.with(name, Domain::IntRange { low, high })
    }

    /// Every combination of the listed values, the last declared name
    /// varying fastest.
    pub fn grid(&self) -> Result<Vec<Params>> {
        self.check()?;
        let mut out = vec![Params::default()];
        for (name, domain) in &self.0 {
            let Domain::Values(values) = domain else {
                return Err(Error::invalid(
                    "grid search",
                    format!("`{name}` is a distribution: a grid needs a list of values"),
                ));
            };
            out = out
                .into_iter()
                .flat_map(|p| {
                    values.iter().map(move |v| {
                        let mut p = p.clone();
                        p.0.push((name.clone(), v.clone()));
                        p
                    })
                })
                .collect();
        }
        Ok(out)
    }

    /// `n` draws, each hyper-parameter independent, a pure function of `seed`.
    pub fn sample(&self, n: usize, seed: u64) -> Result<Vec<Params>> {
        self.check()?;
        let mut g = Generator::new(derive_seed(&[seed, 0x5ea7c4]));
        Ok((0..n)
            .map(|_| {
                Params(
                    self.0
                        .iter()
                        .map(|(name, d)| (name.clone(), draw(d, &mut g)))
                        .collect(),
                )
            })
            .collect())
    }

    fn with(mut self, name: &str, domain: Domain) -> Space {
        self.0.retain(|(n, _)| n != name);
        self.0.push((name.to_string(), domain));
        self
    }

    fn check(&self) -> Result<()> {
        if self.0.is_empty() {
            return Err(Error::invalid(
                "search space",
                "no hyper-parameters declared",
            ));
        }
        for (name, d) in &self.0 {
            let ok = match d {
                Domain::Values(v) => !v.is_empty(),
                Domain::Uniform { low, high } => low.is_finite() && high.is_finite() && low < high,
                Domain::LogUniform { low, high } => {
                    low.is_finite() && high.is_finite() && 0.0 < *low && low < high
                }
                Domain::IntRange { low, high } => low <= high,
            };
            if !ok {
                return Err(Error::invalid(
                    "search space",
                    format!("`{name}`: {d:?} is empty (log-uniform needs 0 < low < high)"),
                ));
            }
        }
        Ok(())
    }
}

fn draw(d: &Domain, g: &mut Generator) -> Value {
    match d {
        Domain::Values(v) => v[g.below(v.len())].clone(),
        Domain::Uniform { low, high } => Value::Float(low + (high - low) * g.uniform()),
        Domain::LogUniform { low, high } => {
            let (a, b) = (low.ln(), high.ln());
            Value::Float((a + (b - a) * g.uniform()).exp())
        }
        Domain::IntRange { low, high } => {
            let span = (high - low) as u64 + 1;
            Value::Int(low + (g.uniform() * span as f64).floor().min(span as f64 - 1.0) as i64)
        }
    }
}

/// One candidate: a value for every hyper-parameter of a [`Space`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(Vec<(String, Value)>);

impl Params {
    /// From `(name, value)` pairs.
    pub fn new<V: Into<Value>>(pairs: impl IntoIterator<Item = (&'static str, V)>) -> Params {
        Params(
            pairs
                .into_iter()
                .map(|(n, v)| (n.to_string(), v.into()))
                .collect(),
        )
    }

    /// Every `(name, value)`, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Result<&Value> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| {
                Error::invalid("search", format!("no hyper-parameter `{name}` in {self}"))
            })
    }

    /// `name` as a real number (a whole number converts).
    pub fn f64(&self, name: &str) -> Result<f64> {
        match self.get(name)? {
            Value::Float(x) => Ok(*x),
            Value::Int(i) => Ok(*i as f64),
            v => Err(self.wrong(name, v, "a number")),
        }
    }

    /// `name` as a size (a whole number ≥ 0).
    pub fn usize(&self, name: &str) -> Result<usize> {
        match self.get(name)? {
            Value::Int(i) if *i >= 0 => Ok(*i as usize),
            v => Err(self.wrong(name, v, "a whole number ≥ 0")),
        }
    }

    /// `name` as a word.
    pub fn text(&self, name: &str) -> Result<&str> {
        match self.get(name)? {
            Value::Text(s) => Ok(s),
            v => Err(self.wrong(name, v, "a word")),
        }
    }

    /// `name` as a switch.
    pub fn bool(&self, name: &str) -> Result<bool> {
        match self.get(name)? {
            Value::Bool(b) => Ok(*b),
            v => Err(self.wrong(name, v, "true or false")),
        }
    }

    fn wrong(&self, name: &str, v: &Value, what: &str) -> Error {
        Error::invalid("search", format!("`{name}` is {v:?}, expected {what}"))
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
        write!(f, "{}", parts.join(", "))
    }
}
