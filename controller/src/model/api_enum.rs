//! Enumerated API string fields (a filter's `type`, a match's `type`) as Rust enums: the values
//! this version knows are variants, and any other value is kept as written in `Other`, so an
//! object that uses a value Pylon does not know still converts and gets a status condition
//! naming that value, instead of failing to parse. Translation matches on variants, never on
//! strings; serde reads and writes the API's spelling.

/// Declares such an enum: `api_enum! { pub enum Kind { Known = "Known", ... } }`.
macro_rules! api_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(from = "String", into = "String")]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value this version does not know, as written.
            Other(String),
        }

        impl $name {
            /// The value as the API spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Other(s) => s,
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($text => Self::$variant,)*
                    _ => Self::Other(s),
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::from(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(k: $name) -> String {
                match k {
                    $name::Other(s) => s,
                    known => known.as_str().to_string(),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use api_enum;

#[cfg(test)]
mod tests {
    api_enum! {
        /// For the test.
        enum Sample {
            /// One.
            One = "One",
            /// Two, spelled otherwise.
            Two = "TWO",
        }
    }

    #[test]
    fn known_values_are_variants_and_others_are_kept_as_written() {
        assert_eq!(Sample::from("One"), Sample::One);
        assert_eq!(Sample::from("TWO"), Sample::Two);
        assert_eq!(Sample::from("Two"), Sample::Other("Two".into()));
        let json = serde_json::to_string(&[Sample::Two, Sample::Other("x".into())]).unwrap();
        assert_eq!(json, r#"["TWO","x"]"#);
        let back: Vec<Sample> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, [Sample::Two, Sample::Other("x".into())]);
        assert_eq!(Sample::Two.to_string(), "TWO");
    }
}
