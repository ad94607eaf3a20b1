// SPDX-License-Identifier: Apache-2.0
import Testing
import VaultKeeper

@testable import Curl

/// What a receiver answered goes to the journal; the webhook's path and query (its secret) do not.
@Suite struct WebhookExcerptTests {
  @Test func theSecretPathIsCutFromAnEcho() throws {
    let url = try #require(WebhookURL("https://hooks.example.com/hooks/abc123secret?token=t0k3n"))
    let echo = Array("<html>Cannot POST /hooks/abc123secret?token=t0k3n\n</html>".utf8)
    let excerpt = CurlWebhookSender.excerpt(echo, hiding: url)
    #expect(excerpt == ": <html>Cannot POST /… </html>")
    let pathOnly = CurlWebhookSender.excerpt(Array("no route /hooks/abc123secret".utf8), hiding: url)
    #expect(pathOnly == ": no route /…")
    #expect(CurlWebhookSender.excerpt([], hiding: url) == "")
    let long = CurlWebhookSender.excerpt(Array(repeating: UInt8(ascii: "x"), count: 5000), hiding: url)
    #expect(long.count == 203, "200 characters at most, and an ellipsis")
    // An echo across the 200th character, and one quoted as JSON.
    let across = CurlWebhookSender.excerpt(Array((String(repeating: "y", count: 190) + " /hooks/abc123secret").utf8), hiding: url)
    #expect(!across.contains("abc"), "\(across)")
    let quoted = CurlWebhookSender.excerpt(Array(#"{"error":"no route \/hooks\/abc123secret"}"#.utf8), hiding: url)
    #expect(!quoted.contains("abc123secret"), "\(quoted)")
  }
}
