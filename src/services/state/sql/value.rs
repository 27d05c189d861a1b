//! Values as they cross between the typed methods and either engine.

/// One SQL value. Both engines store integers as 64-bit (the PostgreSQL schema uses BIGINT
/// wherever SQLite says INTEGER) and flags as 0 or 1.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A floating point number.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Value {
    /// The value's kind, for errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Real(_) => "a real number",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
        }
    }
}

/// What may be a statement's argument.
pub trait ToValue {
    /// The value to bind.
    fn to_value(&self) -> Value;
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                // Saturating: the engines' integers are signed 64-bit.
                Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_to_value!(i64, i32, i16, u8, u16, u32, u64, usize);

/// What a column may be read as; the error names what was expected.
pub trait FromValue: Sized {
    /// The value as `Self`, or what `Self` is, for the error.
    fn from_value(value: &Value) -> Result<Self, &'static str>;
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Self, &'static str> {
        Ok(value.clone())
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Text(s) => Ok(s.clone()),
            _ => Err("text"),
        }
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Int(i) => Ok(*i != 0),
            _ => Err("a flag (an integer)"),
        }
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Real(f) => Ok(*f),
            // As SQLite reads an integer column as a real.
            Value::Int(i) => Ok(*i as f64),
            _ => Err("a number"),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Blob(b) => Ok(b.clone()),
            _ => Err("bytes"),
        }
    }
}

macro_rules! int_from_value {
    ($($t:ty => $name:literal),*) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> Result<Self, &'static str> {
                match value {
                    Value::Int(i) => <$t>::try_from(*i).map_err(|_| $name),
                    _ => Err($name),
                }
            }
        }
    )*};
}
int_from_value!(
    i64 => "a 64-bit integer",
    i32 => "a 32-bit integer",
    u16 => "an integer from 0 to 65535",
    u32 => "an integer from 0 to 2^32-1",
    u64 => "a non-negative integer"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_saturate_in_and_are_checked_out() {
        assert_eq!(u64::MAX.to_value(), Value::Int(i64::MAX));
        assert_eq!(u16::from_value(&Value::Int(70_000)), Err("an integer from 0 to 65535"));
        assert_eq!(u32::from_value(&Value::Int(-1)), Err("an integer from 0 to 2^32-1"));
        assert_eq!(Option::<i64>::from_value(&Value::Null), Ok(None));
        assert_eq!(String::from_value(&Value::Int(1)), Err("text"));
        assert_eq!(Some("a").to_value(), Value::Text("a".into()));
        assert_eq!(None::<i32>.to_value(), Value::Null);
    }
}
