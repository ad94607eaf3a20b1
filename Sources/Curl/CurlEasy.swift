// SPDX-License-Identifier: Apache-2.0
import CCurl
import VaultKeeper

#if canImport(Glibc)
import Glibc
#endif

/// `curl_global_init` must run once before any handle exists, before other threads start
/// using libcurl. A lazy global initialiser runs exactly once, thread-safely.
let curlGlobalInit: Bool = {
  curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
}()

/// State of one transfer, reachable from curl's C callbacks through an unretained pointer.
/// The owner (`CurlEasy.perform`) keeps it alive for the whole transfer.
final class TransferContext {
  var body: [UInt8] = []
  var headers: [(name: String, value: String)] = []
  let bodyLimit: Int
  var bodyTooLarge = false
  let cancellation: CancellationFlag
  /// For streamed downloads: where 2xx body bytes go, and why it stopped us, if it did.
  let streaming: StreamingBody?
  var streamingError: String?
  let handle: UnsafeMutableRawPointer
  /// For uploads from a file: read with pread as curl asks, so memory stays constant.
  var uploadFD: Int32 = -1
  var uploadOffset: Int64 = 0
  var uploadRemaining: Int64 = 0
  var uploadError: String?

  init(bodyLimit: Int, cancellation: CancellationFlag, streaming: StreamingBody?, handle: UnsafeMutableRawPointer) {
    self.bodyLimit = bodyLimit
    self.cancellation = cancellation
    self.streaming = streaming
    self.handle = handle
  }
}

/// A libcurl easy handle. Not thread safe, on purpose: it lives on one transport thread.
/// Reusing the handle keeps its connection cache, so requests to the same node share one
/// kept-alive connection.
final class CurlEasy {
  let handle: UnsafeMutableRawPointer
  /// CURLOPT_ERRORBUFFER needs a buffer that outlives every transfer: owned here.
  private let errorBuffer: UnsafeMutablePointer<CChar>

  init?() {
    guard curlGlobalInit, let handle = curl_easy_init() else { return nil }
    self.handle = handle
    self.errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
  }

  deinit {
    curl_easy_cleanup(handle)
    errorBuffer.deallocate()
  }

  /// The socket of the last transfer's connection if curl keeps it alive, else nil.
  var activeSocket: Int32? {
    var socket: curl_socket_t = -1
    guard ccurl_getinfo_socket(handle, &socket) == CURLE_OK, socket >= 0 else { return nil }
    return socket
  }

  struct Options {
    var url: String
    var method: HTTPRequest.Method
    var headers: [(name: String, value: String)]
    var secretHeaders: [(name: String, value: SecretBytes)] = []
    var body: SecretBytes?
    var allowedProtocol: String
    var unixSocketPath: String?
    var connectTo: String?
    var caFile: String?
    var clientCertFile: String?
    var clientKeyFile: String?
    var connectTimeout: Duration
    var totalTimeout: Duration?
    var bodyLimit: Int
    var streaming: StreamingBody? = nil
    var lowSpeed: (bytesPerSecond: Int, window: Duration)? = nil
    /// PUT this byte range of a file as the body (CURLOPT_UPLOAD, streamed).
    var upload: FileSlice? = nil
    /// CURLOPT_AWS_SIGV4, e.g. "aws:amz:eu-central-1:s3"; signs with `username`/`password`.
    var awsSigV4: String? = nil
    var username: SecretBytes? = nil
    var password: SecretBytes? = nil
    /// Let curl send `Expect: 100-continue` on large uploads (S3: a refused upload stops before
    /// the body is sent). Off for Vault, which does not need the round trip.
    var allowExpectContinue = false
    /// Set for a certificate probe: a TLS handshake on a new connection and nothing else.
    var probe: CertificateProbe? = nil
    /// The proxy to go through (`[snapshot.s3] proxy`, already validated). nil: none, whatever
    /// the environment says. Vault requests never set it.
    var proxy: String? = nil
  }

  /// A handshake to read the server's certificates (`CURLOPT_CONNECT_ONLY`: no HTTP request is
  /// sent, so nothing, not even a path, reaches the server).
  enum CertificateProbe: Equatable {
    /// Verified as every transfer is (CA file, host name).
    case verified
    /// Not verified: only to report what a server whose verification failed presents. No client
    /// certificate is offered either. The only place verification is ever off.
    case unverified
  }

  /// Runs one transfer synchronously (call only from the transport thread).
  func perform(_ options: Options, cancellation: CancellationFlag) -> Result<HTTPResponse, TransportError> {
    // curl_easy_reset keeps the connection cache, so keep-alive survives across requests while
    // no option from the previous request can leak into this one.
    curl_easy_reset(handle)
    // Freed on every way out of this transfer (a failed option returns early too); the reset
    // above already dropped the handle's pointer to any earlier list.
    defer { freeConnectTo() }
    errorBuffer[0] = 0
    let context = TransferContext(bodyLimit: options.bodyLimit, cancellation: cancellation, streaming: options.streaming, handle: handle)
    var headerList: UnsafeMutablePointer<curl_slist>?
    defer { curl_slist_free_all(headerList) }

    func check(_ code: CURLcode, _ what: String) -> TransportError? {
      code == CURLE_OK ? nil : TransportError(.local, "cannot set \(what): \(String(cString: curl_easy_strerror(code)))")
    }

    // The first option that could not be set; later ones are still tried (and their errors
    // dropped), so a transfer never starts half-configured. A plain optional, not an array:
    // this runs on every health check.
    var firstFailure: TransportError?
    func note(_ failure: TransportError?) {
      if firstFailure == nil { firstFailure = failure }
    }
    note(check(ccurl_setopt_string(handle, CURLOPT_URL, options.url), "URL"))
    note(check(ccurl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, options.allowedProtocol), "protocols"))
    note(check(ccurl_setopt_string(handle, CURLOPT_REDIR_PROTOCOLS_STR, options.allowedProtocol), "redirect protocols"))
    note(check(ccurl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0), "no redirects"))
    note(check(ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1), "NOSIGNAL"))
    // TLS verification is always on for requests; only the unverified certificate probe, which
    // sends no request at all (CONNECT_ONLY below), turns it off.
    let verify = options.probe != .unverified
    note(check(ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, verify ? 1 : 0), "peer verification"))
    note(check(ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, verify ? 2 : 0), "host verification"))
    if options.probe != nil {
      // A new connection that is not kept: a reused one would show the certificate from before
      // a reload.
      note(check(ccurl_setopt_long(handle, CURLOPT_FRESH_CONNECT, 1), "fresh connection"))
      note(check(ccurl_setopt_long(handle, CURLOPT_FORBID_REUSE, 1), "no reuse"))
      note(check(ccurl_setopt_long(handle, CURLOPT_CERTINFO, 1), "certificate info"))
      note(check(ccurl_setopt_long(handle, CURLOPT_CONNECT_ONLY, 1), "connect only"))
    }
    note(check(ccurl_setopt_long(handle, CURLOPT_SSLVERSION, Int(CURL_SSLVERSION_TLSv1_2)), "TLS minimum version"))
    note(check(ccurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(max(options.connectTimeout.milliseconds, 1))), "connect timeout"))
    if let total = options.totalTimeout {
      note(check(ccurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(max(total.milliseconds, 1))), "timeout"))
    }
    if let lowSpeed = options.lowSpeed {
      note(check(ccurl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, lowSpeed.bytesPerSecond), "low speed limit"))
      note(check(ccurl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, Int(max(lowSpeed.window.milliseconds / 1000, 1))), "low speed time"))
    }
    note(check(ccurl_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1), "TCP keepalive"))
    note(check(ccurl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer), "error buffer"))
    if let path = options.unixSocketPath {
      note(check(ccurl_setopt_string(handle, CURLOPT_UNIX_SOCKET_PATH, path), "unix socket"))
    }
    if let connectTo = options.connectTo {
      var list: UnsafeMutablePointer<curl_slist>? = nil
      list = curl_slist_append(list, connectTo)
      connectToList = list
      note(check(ccurl_setopt_slist(handle, CURLOPT_CONNECT_TO, list), "connect-to"))
    }
    if let ca = options.caFile {
      note(check(ccurl_setopt_string(handle, CURLOPT_CAINFO, ca), "CA file"))
      // That file is the only trust anchor. Debian's libcurl also has a compiled-in CA *path*
      // (/etc/ssl/certs) that stays active beside CAINFO: without clearing it, any CA in the
      // system store would be trusted too. (Without a CA file, libcurl's defaults, the system
      // store, apply.)
      note(check(ccurl_setopt_string(handle, CURLOPT_CAPATH, nil), "no CA path"))
    }
    // Trust is read afresh for each new connection, as before the path was cleared (libcurl
    // caches a store built from a CA file alone for 24 h): a replaced ca_file counts at once.
    note(check(ccurl_setopt_long(handle, CURLOPT_CA_CACHE_TIMEOUT, 0), "no CA cache"))
    // No proxy from the environment, ever: an empty CURLOPT_PROXY disables https_proxy,
    // all_proxy and the rest (a DefaultEnvironment= or /etc/environment would otherwise send
    // every Vault request, token and share through it). Only a proxy the caller names is used,
    // and then for every host (an empty NOPROXY overrides no_proxy).
    note(check(ccurl_setopt_string(handle, CURLOPT_PROXY, options.proxy ?? ""), "proxy"))
    note(check(ccurl_setopt_string(handle, CURLOPT_NOPROXY, ""), "no-proxy list"))
    if verify, let cert = options.clientCertFile { note(check(ccurl_setopt_string(handle, CURLOPT_SSLCERT, cert), "client certificate")) }
    if verify, let key = options.clientKeyFile { note(check(ccurl_setopt_string(handle, CURLOPT_SSLKEY, key), "client key")) }

    if let sigV4 = options.awsSigV4 {
      note(check(ccurl_setopt_string(handle, CURLOPT_AWS_SIGV4, sigV4), "AWS SigV4"))
    }
    // curl keeps its own copies of these until the next reset (freed, not wiped: libcurl
    // offers no way to wipe them). Ours are built in locked memory and wiped at once.
    if let username = options.username { note(check(setSecretString(CURLOPT_USERNAME, username), "user name")) }
    if let password = options.password { note(check(setSecretString(CURLOPT_PASSWORD, password), "password")) }

    switch options.method {
    case .get: note(check(ccurl_setopt_long(handle, CURLOPT_HTTPGET, 1), "GET"))
    case .head: note(check(ccurl_setopt_long(handle, CURLOPT_NOBODY, 1), "HEAD"))
    case .delete: note(check(ccurl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, "DELETE"), "method"))
    case .put where options.upload != nil:
      note(check(ccurl_setopt_long(handle, CURLOPT_UPLOAD, 1), "upload"))
    case .put, .post:
      note(check(ccurl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, options.method.rawValue), "method"))
      note(check(ccurl_setopt_long(handle, CURLOPT_POST, 1), "POST"))
    }
    for header in options.headers {
      headerList = curl_slist_append(headerList, "\(header.name): \(header.value)")
    }
    for header in options.secretHeaders {
      // Built in locked memory and wiped once curl has copied it (curl's own copy lives until
      // the list is freed after the transfer).
      var line = Array("\(header.name): ".utf8)
      header.value.withUnsafeBytes { line.append(contentsOf: $0) }
      line.append(0)
      let locked = SecretBytes(line)
      SecretBytes.wipe(&line)
      headerList = locked.withUnsafeBytes { raw in
        curl_slist_append(headerList, raw.baseAddress?.assumingMemoryBound(to: CChar.self))
      }
    }
    // curl adds "Expect: 100-continue" to some uploads; Vault does not need the round trip.
    // (With SigV4, curl 7.88 would also sign this empty header it never sends: S3 keeps it.)
    if !options.allowExpectContinue { headerList = curl_slist_append(headerList, "Expect:") }
    note(check(ccurl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList), "headers"))

    let contextPointer = Unmanaged.passUnretained(context).toOpaque()
    note(check(ccurl_setopt_pointer(handle, CURLOPT_WRITEDATA, contextPointer), "write data"))
    note(check(ccurl_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION, { pointer, size, count, userdata in
      guard let userdata else { return 0 }
      let context = Unmanaged<TransferContext>.fromOpaque(userdata).takeUnretainedValue()
      let length = size * count
      if let sink = context.streaming {
        var status = 0
        _ = ccurl_getinfo_long(context.handle, CURLINFO_RESPONSE_CODE, &status)
        if (200..<300).contains(status) {
          if let reason = sink.receive(UnsafeRawBufferPointer(start: pointer, count: length)) {
            context.streamingError = reason
            return 0  // makes curl abort with CURLE_WRITE_ERROR
          }
          return length
        }
      }
      if context.body.count + length > context.bodyLimit {
        context.bodyTooLarge = true
        return 0  // makes curl abort with CURLE_WRITE_ERROR
      }
      if context.body.count + length > context.body.capacity {
        // Grown by hand: Array's own growth frees the old buffer unwiped, and an answer may carry
        // a token (a login, a renewal) that must leave no copies of itself in freed memory.
        var grown: [UInt8] = []
        grown.reserveCapacity(max(context.body.capacity * 2, context.body.count + length, 4096))
        grown.append(contentsOf: context.body)
        SecretBytes.wipe(&context.body)
        grown.append(contentsOf: UnsafeRawBufferPointer(start: pointer, count: length))
        // Moved, not copied: a second reference would make the next append copy the buffer.
        context.body = consume grown
        return length
      }
      context.body.append(contentsOf: UnsafeRawBufferPointer(start: pointer, count: length))
      return length
    }), "write function"))
    note(check(ccurl_setopt_pointer(handle, CURLOPT_HEADERDATA, contextPointer), "header data"))
    note(check(ccurl_setopt_data_callback(handle, CURLOPT_HEADERFUNCTION, { pointer, size, count, userdata in
      guard let userdata else { return 0 }
      let context = Unmanaged<TransferContext>.fromOpaque(userdata).takeUnretainedValue()
      let length = size * count
      switch HeaderLine(UnsafeRawBufferPointer(start: pointer, count: length)) {
      case .status: context.headers.removeAll()  // a new response (after 100 Continue)
      case .field(let name, let value): context.headers.append((name, value))
      case .other: break
      }
      return length
    }), "header function"))
    note(check(ccurl_setopt_long(handle, CURLOPT_NOPROGRESS, 0), "progress"))
    note(check(ccurl_setopt_pointer(handle, CURLOPT_XFERINFODATA, contextPointer), "progress data"))
    note(check(ccurl_setopt_xferinfo_callback(handle, { userdata, _, _, _, _ in
      guard let userdata else { return 0 }
      let context = Unmanaged<TransferContext>.fromOpaque(userdata).takeUnretainedValue()
      return context.cancellation.isCancelled ? 1 : 0
    }), "progress function"))

    if let upload = options.upload {
      if let failure = prepareUpload(upload, context: context, contextPointer: contextPointer) { note(failure) }
    }
    defer { if context.uploadFD >= 0 { close(context.uploadFD) } }

    if let failure = firstFailure { return .failure(failure) }
    if options.body == nil && options.upload == nil && (options.method == .put || options.method == .post) {
      // Without POSTFIELDS curl would fall back to its default read callback: stdin.
      _ = ccurl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, 0)
      _ = ccurl_setopt_string(handle, CURLOPT_COPYPOSTFIELDS, "")  // copied: no dangling pointer
    }

    let started = ContinuousClock.now
    let code: CURLcode = withExtendedLifetime(context) {
      if let body = options.body {
        // POSTFIELDS is not copied by curl: it reads straight from our locked buffer, which
        // `body` keeps alive until the transfer is over. (COPYPOSTFIELDS would leave a copy
        // of the key in curl's heap that nobody wipes.)
        return body.withUnsafeBytes { raw -> CURLcode in
          _ = ccurl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, raw.count)
          _ = ccurl_setopt_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress))
          let result = curl_easy_perform(handle)
          _ = ccurl_setopt_pointer(handle, CURLOPT_POSTFIELDS, nil)
          return result
        }
      }
      return curl_easy_perform(handle)
    }
    let elapsed = started.duration(to: .now)
    if code != CURLE_OK {
      // A transfer cut partway through a login or renewal answer holds part of a token.
      SecretBytes.wipe(&context.body)
      return .failure(mapError(code, context: context))
    }
    var status = 0
    _ = ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
    var connects = 0
    _ = ccurl_getinfo_long(handle, CURLINFO_NUM_CONNECTS, &connects)
    var response = HTTPResponse(status: status, headers: context.headers, body: context.body, newConnection: connects > 0, duration: elapsed)
    if options.probe != nil { response.peerCertificates = peerCertificates() }
    return .success(response)
  }

  /// The PEM ("Cert:" field) of each certificate the server sent, leaf first (CURLINFO_CERTINFO).
  private func peerCertificates() -> [String] {
    var info: UnsafeMutablePointer<curl_certinfo>?
    guard ccurl_getinfo_certinfo(handle, &info) == CURLE_OK, let info, let lists = info.pointee.certinfo else { return [] }
    var pems: [String] = []
    for index in 0..<Int(max(info.pointee.num_of_certs, 0)) {
      var item = lists[index]
      while let entry = item {
        if let data = entry.pointee.data {
          let field = String(cString: data)
          if field.hasPrefix("Cert:") {
            pems.append(String(field.dropFirst("Cert:".count)))
            break
          }
        }
        item = entry.pointee.next
      }
    }
    return pems
  }

  private var connectToList: UnsafeMutablePointer<curl_slist>?

  /// Passes a secret as a C string built in locked memory (curl copies it).
  private func setSecretString(_ option: CURLoption, _ secret: SecretBytes) -> CURLcode {
    var bytes = [UInt8](repeating: 0, count: secret.count + 1)
    secret.withUnsafeBytes { raw in bytes.withUnsafeMutableBytes { $0.copyMemory(from: raw) } }
    let locked = SecretBytes(bytes)
    SecretBytes.wipe(&bytes)
    return locked.withUnsafeBytes { raw in ccurl_setopt_pointer(handle, option, UnsafeMutableRawPointer(mutating: raw.baseAddress)) }
  }

  /// Opens the file (or duplicates the slice's descriptor, so the caller's stays open and the
  /// file is never looked up by name again) and installs the read callback for a streamed PUT.
  private func prepareUpload(_ slice: FileSlice, context: TransferContext, contextPointer: UnsafeMutableRawPointer) -> TransportError? {
    let fd = slice.descriptor.map { fcntl($0, F_DUPFD_CLOEXEC, 0) } ?? open(slice.path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return TransportError(.local, "cannot open \(slice.path): \(String(cString: strerror(errno)))") }
    context.uploadFD = fd
    context.uploadOffset = slice.offset
    context.uploadRemaining = slice.length
    if ccurl_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(slice.length)) != CURLE_OK
      || ccurl_setopt_pointer(handle, CURLOPT_READDATA, contextPointer) != CURLE_OK
      || ccurl_setopt_data_callback(handle, CURLOPT_READFUNCTION, { pointer, size, count, userdata in
        guard let userdata else { return Int(CURL_READFUNC_ABORT) }
        let context = Unmanaged<TransferContext>.fromOpaque(userdata).takeUnretainedValue()
        let wanted = min(Int64(size * count), context.uploadRemaining)
        if wanted == 0 { return 0 }  // end of the body
        while true {
          let n = pread(context.uploadFD, pointer, Int(wanted), off_t(context.uploadOffset))
          if n < 0 && errno == EINTR { continue }
          if n <= 0 {
            context.uploadError = n == 0 ? "the file is shorter than expected" : "read error: \(String(cString: strerror(errno)))"
            return Int(CURL_READFUNC_ABORT)
          }
          context.uploadOffset += Int64(n)
          context.uploadRemaining -= Int64(n)
          return n
        }
      }) != CURLE_OK
    {
      return TransportError(.local, "cannot set up the upload")
    }
    return nil
  }

  private func freeConnectTo() {
    curl_slist_free_all(connectToList)
    connectToList = nil
  }

  private func mapError(_ code: CURLcode, context: TransferContext) -> TransportError {
    let detail = errorBuffer[0] != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(code))
    if let reason = context.streamingError { return TransportError(.aborted, reason) }
    if let reason = context.uploadError { return TransportError(.local, "upload stopped: \(reason)") }
    if context.bodyTooLarge { return TransportError(.protocolError, "response body larger than \(context.bodyLimit) bytes") }
    // The socket error behind the failure (reset per transfer by libcurl), for what the server
    // did: the seal judgement takes only a refusal or a reset/close as a sign of a restart.
    var osErrno = 0
    _ = ccurl_getinfo_long(handle, CURLINFO_OS_ERRNO, &osErrno)
    let socketError = Int32(truncatingIfNeeded: osErrno)
    let reset = socketError == ECONNRESET || socketError == EPIPE
    switch code {
    case CURLE_COULDNT_CONNECT where socketError == ECONNREFUSED || socketError == ENOENT:
      // Nothing listens (ENOENT: a Unix socket's file is gone). Unreachable hosts and networks
      // are not the server's doing. libcurl's text does not say which it was: add it.
      return TransportError(.connect, "\(detail) (\(String(cString: strerror(socketError))))", serverAction: .refused)
    case CURLE_COULDNT_CONNECT where reset:
      // Accepted into the listener's queue, then reset before libcurl saw its connect complete:
      // what the kernel does to the queue of a process that dies (the same as the TLS case below,
      // only earlier). The server's doing, like a refusal.
      return TransportError(.connect, "\(detail) (\(String(cString: strerror(socketError))))", serverAction: .closed)
    case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
      return TransportError(.connect, detail)
    case CURLE_OPERATION_TIMEDOUT:
      return TransportError(.timeout, detail)
    case CURLE_SSL_CONNECT_ERROR where reset:
      // A process killed (or shutting down) with our connection still in its accept queue, as
      // happens to a frozen one: the kernel resets it during the handshake.
      return TransportError(.tls, detail, serverAction: .closed)
    case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CIPHER, CURLE_SSL_ISSUER_ERROR,
      CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS, CURLE_USE_SSL_FAILED, CURLE_SSL_SHUTDOWN_FAILED,
      CURLE_SSL_CLIENTCERT:
      return TransportError(.tls, detail)
    case CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CRL_BADFILE, CURLE_SSL_ENGINE_INITFAILED:
      // Our own files (CA bundle, client certificate) are unusable: a local problem.
      return TransportError(.local, detail)
    case CURLE_ABORTED_BY_CALLBACK:
      return TransportError(.cancelled, "transfer cancelled")
    case CURLE_GOT_NOTHING, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_PARTIAL_FILE, CURLE_HTTP2, CURLE_HTTP2_STREAM:
      // What a server that shuts down or crashes does to a request in flight (OpenBao ends its
      // HTTP/2 streams on SIGTERM): say so in words an operator reads as a restart. The
      // server ended it, unless the socket reports a network error (a route gone, a TCP timeout).
      let network = socketError == ETIMEDOUT || socketError == EHOSTUNREACH || socketError == ENETUNREACH
      return TransportError(.protocolError, "the connection ended during the request (\(detail))", serverAction: network ? nil : .closed)
    case CURLE_WEIRD_SERVER_REPLY, CURLE_UNSUPPORTED_PROTOCOL, CURLE_BAD_CONTENT_ENCODING:
      return TransportError(.protocolError, detail)
    default:
      return TransportError(.local, detail)
    }
  }
}

@available(*, unavailable)
extension CurlEasy: Sendable {}

