//! The podlet: a kubelet stand-in for Pylon's local test cluster.
//! Runs each Pod bound to its Node as processes in the Pod's own network and mount namespaces.
#![forbid(unsafe_code)]
