//! The status vocabulary translation writes: condition types, statuses and reasons, each an
//! enum with the Gateway API's spelling (and Pylon's own `Pending`), so a misspelt reason does
//! not compile and every reason Pylon can write is listed here once.

use serde::Serialize;

/// Declares a `Copy` enum serialized as the API's spelling of each variant.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// As the API spells it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// A condition's `type`.
    ConditionType {
        /// Accepted.
        Accepted = "Accepted",
        /// ResolvedRefs.
        ResolvedRefs = "ResolvedRefs",
        /// Programmed.
        Programmed = "Programmed",
        /// Conflicted (listeners).
        Conflicted = "Conflicted",
        /// PartiallyInvalid (routes).
        PartiallyInvalid = "PartiallyInvalid",
        /// SupportedVersion (GatewayClass).
        SupportedVersion = "SupportedVersion",
        /// InsecureFrontendValidationMode (Gateway).
        InsecureFrontendValidationMode = "InsecureFrontendValidationMode",
    }
}

vocabulary! {
    /// A condition's `status`.
    ConditionStatus {
        /// True.
        True = "True",
        /// False.
        False = "False",
        /// Unknown: not yet known (a route no data plane has applied yet).
        Unknown = "Unknown",
    }
}

impl From<bool> for ConditionStatus {
    fn from(ok: bool) -> Self {
        if ok { Self::True } else { Self::False }
    }
}

vocabulary! {
    /// A condition's `reason`: the spec's names, and `Pending` while no data plane serves a
    /// change yet.
    Reason {
        /// Accepted.
        Accepted = "Accepted",
        /// ResolvedRefs.
        ResolvedRefs = "ResolvedRefs",
        /// Programmed.
        Programmed = "Programmed",
        /// Pending: accepted by the controller, not yet served by a data plane.
        Pending = "Pending",
        /// Invalid.
        Invalid = "Invalid",
        /// InvalidParameters (GatewayClass, Gateway).
        InvalidParameters = "InvalidParameters",
        /// SupportedVersion (GatewayClass).
        SupportedVersion = "SupportedVersion",
        /// ListenersNotValid (Gateway, ListenerSet).
        ListenersNotValid = "ListenersNotValid",
        /// UnsupportedAddress (Gateway).
        UnsupportedAddress = "UnsupportedAddress",
        /// AddressNotAssigned (Gateway).
        AddressNotAssigned = "AddressNotAssigned",
        /// AddressNotUsable (Gateway).
        AddressNotUsable = "AddressNotUsable",
        /// ConfigurationChanged (InsecureFrontendValidationMode).
        ConfigurationChanged = "ConfigurationChanged",
        /// NotAllowed (ListenerSet).
        NotAllowed = "NotAllowed",
        /// HostnameConflict (listeners).
        HostnameConflict = "HostnameConflict",
        /// ProtocolConflict (listeners).
        ProtocolConflict = "ProtocolConflict",
        /// NoConflicts (listeners).
        NoConflicts = "NoConflicts",
        /// UnsupportedProtocol (listeners, backends).
        UnsupportedProtocol = "UnsupportedProtocol",
        /// InvalidRouteKinds (listeners).
        InvalidRouteKinds = "InvalidRouteKinds",
        /// InvalidCertificateRef (listeners).
        InvalidCertificateRef = "InvalidCertificateRef",
        /// InvalidCACertificateRef (listeners, BackendTLSPolicy).
        InvalidCACertificateRef = "InvalidCACertificateRef",
        /// InvalidCACertificateKind (listeners).
        InvalidCACertificateKind = "InvalidCACertificateKind",
        /// InvalidClientCertificateRef (Gateway).
        InvalidClientCertificateRef = "InvalidClientCertificateRef",
        /// NoValidCACertificate (listeners, BackendTLSPolicy).
        NoValidCACertificate = "NoValidCACertificate",
        /// RefNotPermitted (a cross-namespace reference without a ReferenceGrant).
        RefNotPermitted = "RefNotPermitted",
        /// InvalidKind (references).
        InvalidKind = "InvalidKind",
        /// BackendNotFound (routes).
        BackendNotFound = "BackendNotFound",
        /// InvalidBackendTLSPolicy (routes).
        InvalidBackendTLSPolicy = "InvalidBackendTLSPolicy",
        /// NotAllowedByListeners (routes).
        NotAllowedByListeners = "NotAllowedByListeners",
        /// NoMatchingListenerHostname (routes).
        NoMatchingListenerHostname = "NoMatchingListenerHostname",
        /// NoMatchingParent (routes).
        NoMatchingParent = "NoMatchingParent",
        /// UnsupportedValue (routes).
        UnsupportedValue = "UnsupportedValue",
        /// Conflicted (BackendTLSPolicy).
        Conflicted = "Conflicted",
        /// InvalidServiceAnnotation (routes; Pylon's own): a backend Service's `pylon.dev/`
        /// annotation has a value Pylon does not accept.
        InvalidServiceAnnotation = "InvalidServiceAnnotation",
    }
}
