//! A proxy-wasm HTTP filter that does nothing: the cost any Wasm filter pays in Envoy (a VM,
//! a context per stream, the callbacks), which `make bench` measures beside fhirgate.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Nop))
    }
}

struct Nop;

impl Context for Nop {}

impl HttpContext for Nop {}
