//! The structured transport's type registry: type ids to Rust types, one to one.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::value::Value;
use crate::transport::Error;

// ------------------------------------------------------------------------------------
// Registry

pub(crate) type DecodeFn = fn(&Value) -> Result<Box<dyn Any + Send>, Error>;

#[derive(Clone)]
struct Entry {
    /// None for an untyped registration (the object is the [`Value`] itself).
    rust_type: Option<(TypeId, &'static str)>,
    decode: DecodeFn,
}

fn decode_as<T: DeserializeOwned + Send + 'static>(
    v: &Value,
) -> Result<Box<dyn Any + Send>, Error> {
    Ok(Box::new(v.to_typed::<T>()?))
}

fn decode_untyped(v: &Value) -> Result<Box<dyn Any + Send>, Error> {
    Ok(Box::new(v.clone()))
}

/// Maps type ids to Rust types, one to one.
#[derive(Clone, Default)]
pub struct TypeRegistry {
    by_id: HashMap<u16, Entry>,
    by_type: HashMap<TypeId, u16>,
}

impl fmt::Debug for TypeRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<_> = self
            .by_id
            .iter()
            .map(|(id, e)| (*id, e.rust_type.map_or("<untyped>", |t| t.1)))
            .collect();
        ids.sort();
        f.debug_struct("TypeRegistry").field("types", &ids).finish()
    }
}

impl TypeRegistry {
    pub fn new() -> TypeRegistry {
        TypeRegistry::default()
    }

    /// Register `T` under `id`. [`Error::InvalidArgument`] if the id or the type is
    /// already registered.
    pub fn register<T>(&mut self, id: u16) -> Result<(), Error>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let tid = TypeId::of::<T>();
        self.check_id(id)?;
        if let Some(other) = self.by_type.get(&tid) {
            return Err(Error::InvalidArgument(format!(
                "type {} is already registered with id {other}",
                std::any::type_name::<T>()
            )));
        }
        self.by_id.insert(
            id,
            Entry {
                rust_type: Some((tid, std::any::type_name::<T>())),
                decode: decode_as::<T>,
            },
        );
        self.by_type.insert(tid, id);
        Ok(())
    }

    /// Register `id` without a Rust type: its objects are sent and received as
    /// [`Value`]s (what the C ABI uses). [`Error::InvalidArgument`] if already taken.
    pub fn register_untyped(&mut self, id: u16) -> Result<(), Error> {
        self.check_id(id)?;
        self.by_id.insert(
            id,
            Entry {
                rust_type: None,
                decode: decode_untyped,
            },
        );
        Ok(())
    }

    fn check_id(&self, id: u16) -> Result<(), Error> {
        if self.by_id.contains_key(&id) {
            return Err(Error::InvalidArgument(format!(
                "type id {id} is already registered"
            )));
        }
        Ok(())
    }

    /// The id `T` is registered under.
    pub fn id_of<T: 'static>(&self) -> Option<u16> {
        self.by_type.get(&TypeId::of::<T>()).copied()
    }

    pub fn contains(&self, id: u16) -> bool {
        self.by_id.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The decoder of the type registered under `id`.
    pub(crate) fn decoder(&self, id: u16) -> Option<DecodeFn> {
        self.by_id.get(&id).map(|e| e.decode)
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
