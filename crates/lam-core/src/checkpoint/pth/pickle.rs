//! A pickle interpreter for exactly the opcodes `torch.load(weights_only=True)`
//! accepts (protocol 2, as torch.save writes), with its allowlist of
//! globals (`globals`). Nothing in a file is ever executed: a `GLOBAL`
//! resolves to one of lam's own descriptions, and `REDUCE` evaluates it.
//!
//! Every length is checked against the bytes that remain, memo indices are
//! looked up (never used to size anything), and the values a pickle builds
//! are bounded by its length, so a malformed pickle is an error naming the
//! opcode and its byte position — never a panic or a large allocation.

use std::collections::HashMap;
use std::rc::Rc;

use super::value::{kind, Container, Dict, Heap, Key, Value};
use super::{globals, rebuild};

/// Runs the pickle that starts at `data[start]`; returns the value it
/// builds and the position just past its `STOP`. `heap` receives its lists
/// and dicts.
pub(crate) fn load(data: &[u8], start: usize, heap: &mut Heap) -> Result<(Value, usize), String> {
    heap.allow(data.len().saturating_sub(start));
    let mut m = Machine {
        data,
        pos: start,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        heap,
    };
    loop {
        let at = m.pos;
        let op = m.take(1)?[0];
        let result = m.step(op);
        match result {
            Ok(Some(v)) => return Ok((v, m.pos)),
            Ok(None) => {}
            Err(why) => {
                return Err(format!(
                    "pickle opcode {} at byte {at}: {why}",
                    describe(op)
                ))
            }
        }
    }
}

struct Machine<'a, 'h> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    /// Stacks set aside by MARK.
    marks: Vec<Vec<Value>>,
    memo: HashMap<u32, Value>,
    heap: &'h mut Heap,
}

impl Machine<'_, '_> {
    /// Executes one opcode; `Some(value)` at STOP.
    fn step(&mut self, op: u8) -> Result<Option<Value>, String> {
        match op {
            b'\x80' => {
                self.take(1)?; // PROTO: any version; the opcodes are what is checked
            }
            b'.' => return self.pop().map(Some), // STOP
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                let global = globals::resolve(&module, &name)?;
                self.stack.push(Value::Global(Rc::new(global)));
            }
            b'R' => {
                // REDUCE: func(*args)
                let args = self.pop()?;
                let func = self.pop()?;
                let result = self.call(&func, &args)?;
                self.stack.push(result);
            }
            b'\x81' => {
                // NEWOBJ: cls.__new__(cls, *args)
                let args = self.pop()?;
                let class = self.pop()?;
                let result = self.call(&class, &args)?;
                self.stack.push(result);
            }
            b'b' => self.build()?,
            b'Q' => {
                // BINPERSID: only storages.
                let pid = self.pop()?;
                let storage = rebuild::storage(&pid)?;
                self.stack.push(Value::Storage(Rc::new(storage)));
            }
            b'(' => {
                let outer = std::mem::take(&mut self.stack);
                self.marks.push(outer);
            }
            b't' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::tuple(items)?);
            }
            b')' => self.stack.push(Value::tuple(Vec::new())?),
            b'\x85' | b'\x86' | b'\x87' => {
                let n = (op - 0x84) as usize;
                if self.stack.len() < n {
                    return Err(format!(
                        "{n} items needed, {} on the stack",
                        self.stack.len()
                    ));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.stack.push(Value::tuple(items)?);
            }
            b']' => {
                let id = self.heap.alloc(Container::List(Vec::new()));
                self.stack.push(Value::List(id));
            }
            b'}' => {
                let id = self.heap.alloc(Container::Dict(Dict::default()));
                self.stack.push(Value::Dict(id));
            }
            b'\x8f' => {
                // EMPTY_SET: a set is held as a list.
                let id = self.heap.alloc(Container::List(Vec::new()));
                self.stack.push(Value::List(id));
            }
            b'a' => {
                let item = self.pop()?;
                self.list(|items| items.push(item))?;
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.list(|list| list.extend(items))?;
            }
            b's' => {
                let value = self.pop()?;
                let key = Key::of(&self.pop()?)?;
                self.dict(|d| d.insert(key, value))?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return Err(format!("{} items do not make key-value pairs", items.len()));
                }
                let mut pairs = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((Key::of(&k)?, v));
                }
                self.dict(|d| pairs.into_iter().for_each(|(k, v)| d.insert(k, v)))?;
            }
            b'N' => self.stack.push(Value::None),
            b'\x88' => self.stack.push(Value::Bool(true)),
            b'\x89' => self.stack.push(Value::Bool(false)),
            b'K' => {
                let v = self.take(1)?[0];
                self.stack.push(Value::Int(v as i64));
            }
            b'M' => {
                let v = u16::from_le_bytes(self.array()?);
                self.stack.push(Value::Int(v as i64));
            }
            b'J' => {
                let v = i32::from_le_bytes(self.array()?);
                self.stack.push(Value::Int(v as i64));
            }
            b'\x8a' => {
                // LONG1: little-endian two's complement of n bytes.
                let n = self.take(1)?[0] as usize;
                let v = long(self.take(n)?);
                self.stack.push(v);
            }
            b'G' => {
                let v = f64::from_be_bytes(self.array()?);
                self.stack.push(Value::Float(v));
            }
            b'X' => {
                let n = u32::from_le_bytes(self.array()?) as usize;
                let s = self.utf8(n)?;
                self.stack.push(Value::Str(s));
            }
            b'U' => {
                // SHORT_BINSTRING: Python 2's str, decoded as UTF-8 as torch.load does.
                let n = self.take(1)?[0] as usize;
                let s = self.utf8(n)?;
                self.stack.push(Value::Str(s));
            }
            b'h' | b'j' => {
                let i = if op == b'h' {
                    self.take(1)?[0] as u32
                } else {
                    u32::from_le_bytes(self.array()?)
                };
                let v = self
                    .memo
                    .get(&i)
                    .ok_or(format!("memo entry {i} was never stored"))?;
                self.stack.push(v.clone());
            }
            b'q' | b'r' => {
                let i = if op == b'q' {
                    self.take(1)?[0] as u32
                } else {
                    u32::from_le_bytes(self.array()?)
                };
                let top = self.stack.last().ok_or("nothing on the stack to store")?;
                self.memo.insert(i, top.clone());
            }
            _ => {
                return Err(
                    "torch.load(weights_only=True) does not accept this opcode either".into(),
                )
            }
        }
        Ok(None)
    }

    /// REDUCE and NEWOBJ: the callee must be an allowed global, the
    /// arguments a tuple.
    fn call(&mut self, func: &Value, args: &Value) -> Result<Value, String> {
        let Value::Global(g) = func else {
            return Err(format!(
                "only allowed globals can be called, not a {}",
                kind(func)
            ));
        };
        let Value::Tuple(args) = args else {
            return Err(format!("arguments must be a tuple, found a {}", kind(args)));
        };
        globals::call(g, args, self.heap)
    }

    /// BUILD: PyTorch allows it on tensors, parameters and `OrderedDict`;
    /// lam has no use for the state (a state dict's `_metadata`, a
    /// parameter's attributes) and checks only that it is one.
    fn build(&mut self) -> Result<(), String> {
        let state = self.pop()?;
        match (self.stack.last(), &state) {
            (Some(Value::Dict(_)), Value::Dict(_)) => Ok(()),
            (Some(Value::Tensor(_)), _) => Ok(()),
            (Some(target), _) => Err(format!(
                "BUILD sets the state of a {} from a {}; only tensors and OrderedDicts take state",
                kind(target),
                kind(&state)
            )),
            (None, _) => Err("nothing on the stack to build".into()),
        }
    }

    fn list(&mut self, f: impl FnOnce(&mut Vec<Value>)) -> Result<(), String> {
        match self.stack.last() {
            Some(Value::List(id)) => match self.heap.get_mut(*id) {
                Some(Container::List(items)) => {
                    f(items);
                    Ok(())
                }
                _ => Err("a list refers to no list".into()),
            },
            Some(other) => Err(format!("can only append to a list, not a {}", kind(other))),
            None => Err("nothing on the stack to append to".into()),
        }
    }

    fn dict(&mut self, f: impl FnOnce(&mut Dict)) -> Result<(), String> {
        match self.stack.last() {
            Some(Value::Dict(id)) => match self.heap.get_mut(*id) {
                Some(Container::Dict(d)) => {
                    f(d);
                    Ok(())
                }
                _ => Err("a dict refers to no dict".into()),
            },
            Some(other) => Err(format!(
                "can only set items of a dict, not a {}",
                kind(other)
            )),
            None => Err("nothing on the stack to set items of".into()),
        }
    }

    fn pop(&mut self) -> Result<Value, String> {
        self.stack
            .pop()
            .ok_or_else(|| "the stack is empty".to_string())
    }

    /// The items pushed since the last MARK, restoring the stack below it.
    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let outer = self.marks.pop().ok_or("no MARK to return to")?;
        Ok(std::mem::replace(&mut self.stack, outer))
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                format!(
                    "{n} bytes wanted at byte {} but the pickle has {} (truncated?)",
                    self.pos,
                    self.data.len()
                )
            })?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn utf8(&mut self, n: usize) -> Result<Rc<str>, String> {
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(Rc::from)
            .map_err(|_| "a string that is not UTF-8".into())
    }

    /// A newline-terminated line (GLOBAL's module and name).
    fn line(&mut self) -> Result<String, String> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .take(256)
            .position(|&b| b == b'\n')
            .ok_or("a GLOBAL name with no end of line within 256 bytes")?;
        let text = self.utf8(n)?;
        self.pos += 1;
        Ok(text.to_string())
    }
}

/// LONG1's value: an `Int` when it fits 64 bits.
fn long(bytes: &[u8]) -> Value {
    if bytes.len() <= 8 {
        let fill = if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
            0xff
        } else {
            0
        };
        let mut b = [fill; 8];
        b[..bytes.len()].copy_from_slice(bytes);
        Value::Int(i64::from_le_bytes(b))
    } else {
        Value::BigInt(bytes.into())
    }
}

/// An opcode's byte and name, for messages.
fn describe(op: u8) -> String {
    let name = match op {
        b'\x80' => "PROTO",
        b'.' => "STOP",
        b'c' => "GLOBAL",
        b'R' => "REDUCE",
        b'\x81' => "NEWOBJ",
        b'b' => "BUILD",
        b'Q' => "BINPERSID",
        b'(' => "MARK",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'\x85' => "TUPLE1",
        b'\x86' => "TUPLE2",
        b'\x87' => "TUPLE3",
        b']' => "EMPTY_LIST",
        b'}' => "EMPTY_DICT",
        b'\x8f' => "EMPTY_SET",
        b'a' => "APPEND",
        b'e' => "APPENDS",
        b's' => "SETITEM",
        b'u' => "SETITEMS",
        b'N' => "NONE",
        b'\x88' => "NEWTRUE",
        b'\x89' => "NEWFALSE",
        b'K' => "BININT1",
        b'M' => "BININT2",
        b'J' => "BININT",
        b'\x8a' => "LONG1",
        b'G' => "BINFLOAT",
        b'X' => "BINUNICODE",
        b'U' => "SHORT_BINSTRING",
        b'h' => "BINGET",
        b'j' => "LONG_BINGET",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b'i' | b'\x93' => "INST/STACK_GLOBAL (code execution)",
        b'\x95' => "FRAME (protocol 4)",
        _ => "",
    };
    if name.is_empty() {
        format!("{op:#04x}")
    } else {
        format!("{op:#04x} ({name})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<Value, String> {
        load(bytes, 0, &mut Heap::default()).map(|(v, _)| v)
    }

    #[test]
    fn code_execution_is_refused_by_name() {
        // The classic: os.system("echo hi") through GLOBAL + REDUCE.
        let evil = b"\x80\x02cos\nsystem\nX\x07\x00\x00\x00echo hi\x85R.";
        let e = run(evil).expect_err("refused");
        assert!(
            e.contains("`os.system`") && e.contains("never runs code"),
            "{e}"
        );
        let e = run(b"\x80\x02c__main__\nNet\n)\x81.").expect_err("refused");
        assert!(e.contains("model.state_dict()"), "{e}");
        // STACK_GLOBAL (protocol 4) is not among the accepted opcodes.
        let e = run(b"\x80\x04\x93.").expect_err("refused");
        assert!(e.contains("STACK_GLOBAL"), "{e}");
    }

    #[test]
    fn malformed_pickles_are_errors() {
        for bad in [
            &b""[..],
            b"\x80",
            b"\x80\x02X\xff\xff\xff\xff",
            b"\x80\x02h\x05.",
            b"\x80\x02t.",
            b"\x80\x02a.",
            b"\x80\x02]K\x01s.",
            b"\x80\x02.",
            b"\x80\x02}K\x01K\x02K\x03u.",
            b"\x80\x02X\x02\x00\x00\x00\xff\xfe.",
            b"\x80\x02ccollections\nOrderedDict",
        ] {
            assert!(run(bad).is_err(), "{bad:?} loaded");
        }
    }

    #[test]
    fn shared_containers_stay_shared() {
        // l = []; d = {}; l.append(d); d["k"] = 1 (through the memo); (l, d):
        // the dict inside the list has "k", as in Python.
        let p = b"\x80\x02(]q\x01}q\x00ah\x00X\x01\x00\x00\x00kK\x01st.";
        let mut heap = Heap::default();
        let (v, end) = load(p, 0, &mut heap).expect("valid");
        assert_eq!(end, p.len());
        let Value::Tuple(items) = v else {
            panic!("a tuple")
        };
        let Value::List(l) = items[0] else {
            panic!("a list")
        };
        let Some(Container::List(inner)) = heap.get(l) else {
            panic!("a list")
        };
        let Value::Dict(d) = inner[0] else {
            panic!("a dict")
        };
        let Value::Dict(d2) = items[1] else {
            panic!("a dict")
        };
        assert_eq!(d, d2, "one dict, shared");
    }

    #[test]
    fn repeated_copies_are_bounded() {
        // s = set; l = [0] * 1000; then set(l) called over and over.
        let mut p = b"\x80\x02(c__builtin__\nset\nq\x00]q\x01(".to_vec();
        p.extend(std::iter::repeat_n(*b"K\x00", 1000).flatten());
        p.push(b'e');
        for _ in 0..2000 {
            p.extend_from_slice(b"h\x00h\x01\x85R");
        }
        p.extend_from_slice(b"t.");
        let e = run(&p).expect_err("too many copies");
        assert!(e.contains("copies its lists"), "{e}");
    }

    #[test]
    fn integers_decode_as_python_does() {
        assert!(matches!(
            run(b"\x80\x02\x8a\x01\xff.").expect("ok"),
            Value::Int(-1)
        ));
        assert!(matches!(
            run(b"\x80\x02\x8a\x02\xff\x00.").expect("ok"),
            Value::Int(255)
        ));
        assert!(matches!(
            run(b"\x80\x02\x8a\x00.").expect("ok"),
            Value::Int(0)
        ));
        assert!(matches!(
            run(b"\x80\x02J\xfe\xff\xff\xff.").expect("ok"),
            Value::Int(-2)
        ));
        assert!(matches!(
            run(b"\x80\x02M\x01\x01.").expect("ok"),
            Value::Int(257)
        ));
    }
}
