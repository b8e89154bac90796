//! A small reader of kernel BTF (`/sys/kernel/btf/vmlinux`): struct layouts and function
//! prototypes, straight from the raw bytes.
//!
//! Why not a general BTF crate: portwatch asks a dozen questions once at start-up, and building
//! a full type graph of the ~150k kernel types cost 39 MiB of peak memory (btf-rs), more than
//! the rest of the daemon together. This keeps the file and one offset per type (under 7 MiB).
//! Format: <https://docs.kernel.org/bpf/btf.html>.
use std::{fmt, path::Path};

const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;
/// Every type starts with name_off, info and size/type: three u32.
const TYPE_HEADER: usize = 12;

/// BTF kinds (`BTF_KIND_*`) that this reader looks into.
mod kind {
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const FWD: u32 = 7;
    pub const TYPEDEF: u32 = 8;
    pub const VOLATILE: u32 = 9;
    pub const CONST: u32 = 10;
    pub const RESTRICT: u32 = 11;
    pub const FUNC: u32 = 12;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const FLOAT: u32 = 16;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;
}

#[derive(Debug)]
pub struct BtfError(String);

impl fmt::Display for BtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn malformed(what: &str) -> BtfError {
    BtfError(format!("malformed BTF: {what}"))
}

/// One type: its id's raw record.
#[derive(Clone, Copy, Debug)]
pub struct TypeRef {
    pub id: u32,
    kind: u32,
    vlen: usize,
    kind_flag: bool,
    name_off: u32,
    /// size (int, struct, union, enum) or referenced type id (ptr, typedef, func, ...).
    size_or_type: u32,
    /// Where the kind-specific data after the header starts.
    extra: usize,
}

/// A struct or union member.
#[derive(Clone, Copy, Debug)]
pub struct Member<'a> {
    pub name: &'a str,
    pub type_id: u32,
    pub bit_offset: u32,
    /// Non-zero for a bitfield.
    pub bitfield_size: u32,
}

pub struct Btf {
    data: Vec<u8>,
    types_start: usize,
    strings: std::ops::Range<usize>,
    /// Byte offset of each type by id (id 0 is `void` and has none).
    offsets: Vec<u32>,
}

impl Btf {
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|e| BtfError(e.to_string()))?;
        Self::parse(data)
    }

    pub fn parse(data: Vec<u8>) -> Result<Self, BtfError> {
        let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        if u16_at(0) != Some(MAGIC) {
            return Err(malformed("no BTF magic (or not little-endian)"));
        }
        let mut btf = Self {
            types_start: 0,
            strings: 0..0,
            offsets: vec![0],
            data: Vec::new(),
        };
        let u32_at = |o: usize| {
            data.get(o..o + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or_else(|| malformed("truncated header"))
        };
        let hdr_len = u32_at(4)?;
        let (type_off, type_len) = (u32_at(8)?, u32_at(12)?);
        let (str_off, str_len) = (u32_at(16)?, u32_at(20)?);
        if hdr_len < HEADER_LEN {
            return Err(malformed("short header"));
        }
        btf.types_start = hdr_len + type_off;
        btf.strings = hdr_len + str_off..hdr_len + str_off + str_len;
        let types_end = btf.types_start + type_len;
        if types_end > data.len() || btf.strings.end > data.len() {
            return Err(malformed("sections beyond the end of the data"));
        }
        btf.data = data;
        let mut at = btf.types_start;
        while at < types_end {
            btf.offsets
                .push(u32::try_from(at).map_err(|_| malformed("too large"))?);
            let t = btf.read(at, 0)?;
            at = t.extra + extra_len(&t)?;
        }
        if at != types_end {
            return Err(malformed("a type runs past the type section"));
        }
        Ok(btf)
    }

    fn u32_at(&self, at: usize) -> Result<u32, BtfError> {
        self.data
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| malformed("truncated type"))
    }

    fn read(&self, at: usize, id: u32) -> Result<TypeRef, BtfError> {
        let info = self.u32_at(at + 4)?;
        Ok(TypeRef {
            id,
            kind: (info >> 24) & 0x1f,
            vlen: (info & 0xffff) as usize,
            kind_flag: info >> 31 != 0,
            name_off: self.u32_at(at)?,
            size_or_type: self.u32_at(at + 8)?,
            extra: at + TYPE_HEADER,
        })
    }

    pub fn type_by_id(&self, id: u32) -> Result<TypeRef, BtfError> {
        let at = *self
            .offsets
            .get(id as usize)
            .filter(|_| id != 0)
            .ok_or_else(|| malformed(&format!("no type {id}")))?;
        self.read(at as usize, id)
    }

    pub fn name(&self, name_off: u32) -> Result<&str, BtfError> {
        let start = self.strings.start + name_off as usize;
        let rest = self
            .data
            .get(start..self.strings.end)
            .ok_or_else(|| malformed("name outside the string section"))?;
        let len = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..len]).map_err(|_| malformed("a name is not UTF-8"))
    }

    pub fn type_name(&self, t: &TypeRef) -> Result<&str, BtfError> {
        self.name(t.name_off)
    }

    /// Every type of kind `kind` named `name`.
    fn by_name(&self, kind: u32, name: &str) -> impl Iterator<Item = TypeRef> + '_ {
        let name = name.to_owned();
        (1..self.offsets.len() as u32)
            .filter_map(|id| self.type_by_id(id).ok())
            .filter(move |t| t.kind == kind && self.type_name(t).is_ok_and(|n| n == name))
    }

    /// The struct called `name` with members (not a forward declaration).
    pub fn struct_by_name(&self, name: &str) -> Option<TypeRef> {
        self.by_name(kind::STRUCT, name).find(|t| t.vlen > 0)
    }

    pub fn is_composite(t: &TypeRef) -> bool {
        t.kind == kind::STRUCT || t.kind == kind::UNION
    }

    /// The members of a struct or union.
    pub fn members(&self, t: &TypeRef) -> Result<Vec<Member<'_>>, BtfError> {
        if !Self::is_composite(t) {
            return Err(malformed("members of a type that is not a struct or union"));
        }
        (0..t.vlen)
            .map(|i| {
                let at = t.extra + i * 12;
                let offset = self.u32_at(at + 8)?;
                let (bit_offset, bitfield_size) = if t.kind_flag {
                    (offset & 0xff_ffff, offset >> 24)
                } else {
                    (offset, 0)
                };
                Ok(Member {
                    name: self.name(self.u32_at(at)?)?,
                    type_id: self.u32_at(at + 4)?,
                    bit_offset,
                    bitfield_size,
                })
            })
            .collect()
    }

    /// Follows typedefs and qualifiers to the type that has a layout.
    pub fn strip(&self, id: u32) -> Result<TypeRef, BtfError> {
        let mut t = self.type_by_id(id)?;
        for _ in 0..32 {
            match t.kind {
                kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => {
                    t = self.type_by_id(t.size_or_type)?;
                }
                _ => return Ok(t),
            }
        }
        Err(malformed("type chain too deep"))
    }

    /// Size in bytes of a stripped type, where it has one.
    pub fn size_of(&self, t: &TypeRef) -> Result<Option<usize>, BtfError> {
        Ok(match t.kind {
            kind::INT | kind::ENUM | kind::ENUM64 | kind::STRUCT | kind::UNION => {
                Some(t.size_or_type as usize)
            }
            kind::PTR => Some(8),
            kind::ARRAY => {
                let elem = self.strip(self.u32_at(t.extra)?)?;
                let len = self.u32_at(t.extra + 8)? as usize;
                self.size_of(&elem)?.map(|s| s * len)
            }
            _ => None,
        })
    }

    /// The value of enumerator `name`, in whichever enum has it.
    pub fn enum_value(&self, name: &str) -> Result<Option<i64>, BtfError> {
        for id in 1..self.offsets.len() as u32 {
            let t = self.type_by_id(id)?;
            let width = match t.kind {
                kind::ENUM => 8,
                kind::ENUM64 => 12,
                _ => continue,
            };
            for i in 0..t.vlen {
                let at = t.extra + i * width;
                if self.name(self.u32_at(at)?)? != name {
                    continue;
                }
                let lo = self.u32_at(at + 4)?;
                return Ok(Some(if width == 8 {
                    i64::from(lo as i32)
                } else {
                    (i64::from(self.u32_at(at + 8)?) << 32) | i64::from(lo)
                }));
            }
        }
        Ok(None)
    }

    /// How many parameters the function behind typedef `name` (a function pointer, as the
    /// kernel's `btf_trace_*` types are) takes.
    pub fn typedef_params(&self, name: &str) -> Result<Option<usize>, BtfError> {
        let Some(def) = self.by_name(kind::TYPEDEF, name).next() else {
            return Ok(None);
        };
        let ptr = self.type_by_id(def.size_or_type)?;
        let proto = if ptr.kind == kind::PTR {
            self.type_by_id(ptr.size_or_type)?
        } else {
            ptr
        };
        if proto.kind != kind::FUNC_PROTO {
            return Err(malformed("a tracepoint type that is no function pointer"));
        }
        Ok(Some(proto.vlen))
    }

    /// The parameter names of kernel function `name`, if BTF describes it.
    pub fn function_params(&self, name: &str) -> Result<Option<Vec<&str>>, BtfError> {
        let Some(func) = self.by_name(kind::FUNC, name).next() else {
            return Ok(None);
        };
        let proto = self.type_by_id(func.size_or_type)?;
        if proto.kind != kind::FUNC_PROTO {
            return Err(malformed("a function without a prototype"));
        }
        (0..proto.vlen)
            .map(|i| self.name(self.u32_at(proto.extra + i * 8)?))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// Bytes of kind-specific data after a type's header.
fn extra_len(t: &TypeRef) -> Result<usize, BtfError> {
    Ok(match t.kind {
        kind::INT | kind::VAR | kind::DECL_TAG => 4,
        kind::ARRAY => 12,
        kind::STRUCT | kind::UNION | kind::DATASEC | kind::ENUM64 => 12 * t.vlen,
        kind::ENUM | kind::FUNC_PROTO => 8 * t.vlen,
        kind::PTR
        | kind::FWD
        | kind::TYPEDEF
        | kind::VOLATILE
        | kind::CONST
        | kind::RESTRICT
        | kind::FUNC
        | kind::FLOAT
        | kind::TYPE_TAG => 0,
        other => return Err(BtfError(format!("unknown BTF kind {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_kernels_btf() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            eprintln!("no kernel BTF here; skipped");
            return;
        }
        let btf = Btf::from_file(path).unwrap();
        let sock = btf.struct_by_name("sock").unwrap();
        let members = btf.members(&sock).unwrap();
        assert_eq!(members[0].name, "__sk_common");
        assert_eq!(members[0].bit_offset, 0);
        let common = btf.strip(members[0].type_id).unwrap();
        assert_eq!(btf.type_name(&common).unwrap(), "sock_common");
        assert!(btf.size_of(&sock).unwrap().unwrap() > 500);
        let params = btf
            .function_params("inet_csk_listen_start")
            .unwrap()
            .unwrap();
        assert_eq!(params[0], "sk");
        assert!(btf.function_params("no_such_function").unwrap().is_none());
        assert!(btf.struct_by_name("no_such_struct").is_none());
    }

    #[test]
    fn refuses_what_is_not_btf() {
        assert!(Btf::parse(vec![0; 64]).is_err());
        assert!(Btf::parse(vec![0x9f, 0xeb, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0, 99]).is_err());
    }
}
