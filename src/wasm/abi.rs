//! The proxy-wasm ABI calls fhirgate makes, declared here with their raw `u32` status so that
//! every status the host returns is input, never a panic: the SDK's `hostcalls` wrappers panic
//! on statuses they do not expect (a VM lost for every request of the worker), and transmute the
//! status into an enum, which is undefined behaviour for a value the enum lacks.
//!
//! Memory the host returns was allocated through the SDK's `proxy_on_memory_allocate` (a boxed
//! byte slice of exactly the requested size) and is taken back here with the same layout.

use std::ptr::null_mut;

/// A status other than `Ok` (0), as the host returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u32);

/// `NotFound`.
pub const NOT_FOUND: u32 = 1;

/// Map types of `proxy_get_header_map_pairs` and friends.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum Map {
    /// Request headers.
    Request = 0,
    /// Response headers.
    Response = 2,
    /// Headers of an HTTP callout's answer.
    CalloutResponse = 6,
}

/// Header names and values as the host gave them.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Buffer types of `proxy_get_buffer_bytes`/`proxy_set_buffer_bytes`.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum Buffer {
    /// The request body.
    RequestBody = 0,
    /// The response body.
    ResponseBody = 1,
    /// The body of an HTTP callout's answer.
    CalloutResponseBody = 4,
    /// The plugin configuration.
    PluginConfiguration = 7,
}

/// Stream types of `proxy_continue_stream`/`proxy_close_stream`.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum Stream {
    /// The request half.
    Request = 0,
    /// The response half.
    Response = 1,
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, data: *const u8, size: usize) -> u32;
    fn proxy_get_log_level(level: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_set_effective_context(context: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer: u32,
        start: usize,
        max: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer: u32,
        start: usize,
        size: usize,
        data: *const u8,
        data_size: usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path: *const u8,
        path_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
        cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_call_foreign_function(
        name: *const u8,
        name_size: usize,
        arguments: *const u8,
        arguments_size: usize,
        results: *mut *mut u8,
        results_size: *mut usize,
    ) -> u32;
    fn proxy_continue_stream(stream: u32) -> u32;
    fn proxy_close_stream(stream: u32) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_define_metric(kind: u32, name: *const u8, name_size: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    fn proxy_record_metric(id: u32, value: u64) -> u32;
}

fn check(status: u32) -> Result<(), Status> {
    if status == 0 {
        Ok(())
    } else {
        Err(Status(status))
    }
}

/// Takes ownership of host-allocated memory (`None` for a null pointer).
///
/// # Safety
/// `data`/`size` must come from a successful hostcall that allocated through
/// `proxy_on_memory_allocate` (or be null).
unsafe fn take(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        return None;
    }
    // SAFETY: the SDK's allocator hands out a boxed slice of exactly `size` bytes, which the host
    // filled; a `Vec` of that length and capacity owns the same allocation.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Writes a log line at `level` (proxy-wasm levels: 0 trace … 5 critical).
pub fn log(level: u32, message: &str) -> Result<(), Status> {
    // SAFETY: the pointer and length come from a live `&str` the host only reads.
    check(unsafe { proxy_log(level, message.as_ptr(), message.len()) })
}

/// The host's current log level.
pub fn log_level() -> Result<u32, Status> {
    let mut level = 0u32;
    // SAFETY: `level` is a valid place for the host to write a u32.
    check(unsafe { proxy_get_log_level(&mut level) })?;
    Ok(level)
}

/// Wall-clock time in nanoseconds since the Unix epoch.
pub fn now_nanos() -> Result<u64, Status> {
    let mut t = 0u64;
    // SAFETY: `t` is a valid place for the host to write a u64.
    check(unsafe { proxy_get_current_time_nanoseconds(&mut t) })?;
    Ok(t)
}

/// Sets the root context's tick period.
pub fn set_tick_period(ms: u32) -> Result<(), Status> {
    // SAFETY: plain value argument.
    check(unsafe { proxy_set_tick_period_milliseconds(ms) })
}

/// Makes `context` the one later hostcalls act on.
pub fn set_effective_context(context: u32) -> Result<(), Status> {
    // SAFETY: plain value argument.
    check(unsafe { proxy_set_effective_context(context) })
}

/// Up to `max` bytes of a buffer from `start`; `Ok(None)` when there is none.
pub fn get_buffer(buffer: Buffer, start: usize, max: usize) -> Result<Option<Vec<u8>>, Status> {
    let mut data = null_mut();
    let mut size = 0usize;
    // SAFETY: out-pointers are valid; memory returned on success is ours (see `take`).
    let status = unsafe { proxy_get_buffer_bytes(buffer as u32, start, max, &mut data, &mut size) };
    match status {
        0 => Ok(unsafe { take(data, size) }),
        NOT_FOUND => Ok(None),
        s => Err(Status(s)),
    }
}

/// Replaces `size` bytes of a buffer from `start` with `data` (`usize::MAX`: everything).
pub fn set_buffer(buffer: Buffer, start: usize, size: usize, data: &[u8]) -> Result<(), Status> {
    // SAFETY: the slice is live for the call and only read by the host.
    check(unsafe { proxy_set_buffer_bytes(buffer as u32, start, size, data.as_ptr(), data.len()) })
}

/// Every header of a map, names and values as bytes, in order.
pub fn get_map(map: Map) -> Result<Pairs, Status> {
    let mut data = null_mut();
    let mut size = 0usize;
    // SAFETY: out-pointers are valid; memory returned on success is ours (see `take`).
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    check(status)?;
    let bytes = unsafe { take(data, size) }.unwrap_or_default();
    Ok(decode_map(&bytes).unwrap_or_default())
}

/// Removes every value of header `name`.
pub fn remove_header(map: Map, name: &str) -> Result<(), Status> {
    // SAFETY: the slice is live for the call and only read by the host.
    check(unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) })
}

/// Sets header `name` to `value`, replacing every existing value.
pub fn replace_header(map: Map, name: &str, value: &str) -> Result<(), Status> {
    // SAFETY: the slices are live for the call and only read by the host.
    check(unsafe {
        proxy_replace_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// A property such as `["source", "address"]`; `Ok(None)` when it is not there.
pub fn get_property(path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
    let path = path.join("\0");
    let mut data = null_mut();
    let mut size = 0usize;
    // SAFETY: out-pointers are valid; memory returned on success is ours (see `take`).
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    match status {
        0 => Ok(unsafe { take(data, size) }),
        NOT_FOUND => Ok(None),
        s => Err(Status(s)),
    }
}

/// Calls the host's foreign function `name` (Envoy: `verify_signature`, ...) with `arguments`;
/// its answer, `Ok(None)` when it answered nothing. `NotFound`: the host has no such function.
pub fn call_foreign_function(name: &str, arguments: &[u8]) -> Result<Option<Vec<u8>>, Status> {
    let mut data = null_mut();
    let mut size = 0usize;
    // SAFETY: the slices are live for the call and only read; out-pointers are valid; memory
    // returned on success is ours (see `take`).
    let status = unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            arguments.as_ptr(),
            arguments.len(),
            &mut data,
            &mut size,
        )
    };
    match status {
        0 => Ok(unsafe { take(data, size) }),
        s => Err(Status(s)),
    }
}

/// Sets the one-segment property `key` of the current stream (Envoy: filter state `wasm.<key>`).
pub fn set_property(key: &str, value: &str) -> Result<(), Status> {
    // SAFETY: the slices are live for the call and only read by the host.
    check(unsafe { proxy_set_property(key.as_ptr(), key.len(), value.as_ptr(), value.len()) })
}

/// A shared-data value and its CAS version; `Ok(None)` when the key is not set.
pub fn get_shared(key: &str) -> Result<Option<(Vec<u8>, u32)>, Status> {
    let mut data = null_mut();
    let mut size = 0usize;
    let mut cas = 0u32;
    // SAFETY: out-pointers are valid; memory returned on success is ours (see `take`).
    let status =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    match status {
        0 => Ok(unsafe { take(data, size) }.map(|v| (v, cas))),
        NOT_FOUND => Ok(None),
        s => Err(Status(s)),
    }
}

/// Writes a shared-data value; with a `cas` other than 0 only if the version still matches.
pub fn set_shared(key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
    // SAFETY: the slices are live for the call and only read by the host.
    check(unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    })
}

/// Resumes a held half of the current stream.
pub fn continue_stream(stream: Stream) -> Result<(), Status> {
    // SAFETY: plain value argument.
    check(unsafe { proxy_continue_stream(stream as u32) })
}

/// Resets a half of the current stream.
pub fn close_stream(stream: Stream) -> Result<(), Status> {
    // SAFETY: plain value argument.
    check(unsafe { proxy_close_stream(stream as u32) })
}

/// Answers the current stream locally.
pub fn send_local_response(
    status: u32,
    headers: &[(&str, &str)],
    body: &[u8],
    details: &str,
) -> Result<(), Status> {
    let headers = encode_map(headers);
    // SAFETY: every slice is live for the call and only read by the host.
    check(unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    })
}

/// Defines a metric (0 counter, 1 gauge, 2 histogram); returns its id.
pub fn define_metric(kind: u32, name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    // SAFETY: the slice is live for the call; `id` is a valid out-pointer.
    check(unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

/// Adds `offset` to a counter or gauge.
pub fn increment_metric(id: u32, offset: i64) -> Result<(), Status> {
    // SAFETY: plain value arguments.
    check(unsafe { proxy_increment_metric(id, offset) })
}

/// Sets a gauge or records a histogram sample.
pub fn record_metric(id: u32, value: u64) -> Result<(), Status> {
    // SAFETY: plain value arguments.
    check(unsafe { proxy_record_metric(id, value) })
}

/// The proxy-wasm header map encoding: a u32 count, then (name length, value length) u32 pairs,
/// then each name and value followed by a NUL byte (little endian).
pub fn encode_map(pairs: &[(&str, &str)]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(n, v)| 10 + n.len() + v.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&u32::try_from(pairs.len()).unwrap_or(0).to_le_bytes());
    for (n, v) in pairs {
        out.extend_from_slice(&u32::try_from(n.len()).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&u32::try_from(v.len()).unwrap_or(0).to_le_bytes());
    }
    for (n, v) in pairs {
        out.extend_from_slice(n.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    let n = u32::from_le_bytes([*b.first()?, *b.get(1)?, *b.get(2)?, *b.get(3)?]);
    usize::try_from(n).ok()
}

/// Decodes [`encode_map`]'s format; `None` when the bytes do not follow it (every length is
/// checked against the buffer).
pub fn decode_map(bytes: &[u8]) -> Option<Pairs> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = read_u32(bytes, 0)?;
    let mut sizes = Vec::with_capacity(count.min(bytes.len() / 8));
    for i in 0..count {
        let at = 4usize.checked_add(i.checked_mul(8)?)?;
        sizes.push((read_u32(bytes, at)?, read_u32(bytes, at.checked_add(4)?)?));
    }
    let mut pos = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut out = Vec::with_capacity(sizes.len());
    for (n, v) in sizes {
        let name = bytes.get(pos..pos.checked_add(n)?)?.to_vec();
        pos = pos.checked_add(n)?.checked_add(1)?;
        let value = bytes.get(pos..pos.checked_add(v)?)?.to_vec();
        pos = pos.checked_add(v)?.checked_add(1)?;
        out.push((name, value));
    }
    Some(out)
}
