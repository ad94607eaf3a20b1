// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import VaultKeeper

@Suite struct S3XMLTests {
  func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

  @Test func listPageWithDeclarationNamespaceAndEntities() throws {
    let page = try S3Responses.listPage(bytes("""
      <?xml version="1.0" encoding="UTF-8"?>
      <!-- a comment before the root -->
      <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
        <Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount>
        <Contents>
          <Key>p/a&amp;b&lt;c&gt;&quot;&apos;&#65;&#x42;</Key>
          <LastModified>2026-11-22T14:23:51.000Z</LastModified>
          <ETag>&quot;d5b884cac0139a4932bbd99e6b4c8948&quot;</ETag>
          <Size>100000</Size>
          <StorageClass>STANDARD</StorageClass>
        </Contents>
        <Contents><Key><![CDATA[p/x<y]]></Key><Size>0</Size><LastModified>2026-01-02T03:04:05Z</LastModified></Contents>
        <IsTruncated>false</IsTruncated>
      </ListBucketResult>
      """))
    #expect(page.nextToken == nil)
    #expect(page.objects.map(\.key) == ["p/a&b<c>\"'AB", "p/x<y"])
    #expect(page.objects.map(\.size) == [100_000, 0])
    #expect(page.objects[0].etag == "d5b884cac0139a4932bbd99e6b4c8948")
    #expect(page.objects[0].lastModified == Date(timeIntervalSince1970: 1_795_357_431))
    #expect(page.objects[1].lastModified == Date(timeIntervalSince1970: 1_767_323_045))
  }

  @Test func truncatedPageCarriesItsToken() throws {
    let page = try S3Responses.listPage(bytes(
      "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>1/a+b=</NextContinuationToken><Prefix/></ListBucketResult>"))
    #expect(page.nextToken == "1/a+b=")
    #expect(page.objects.isEmpty)
  }

  @Test(arguments: [
    ("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>", "NextContinuationToken"),
    ("<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>", "IsTruncated"),
    ("<ListBucketResult></ListBucketResult>", "IsTruncated"),
    ("<ListBucketResult><Contents><Size>1</Size></Contents><IsTruncated>false</IsTruncated></ListBucketResult>", "without <Key>"),
    ("<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents><IsTruncated>false</IsTruncated></ListBucketResult>", "Size"),
    ("<ListBucketResult><Contents><Key>k</Key><Size>1</Size><LastModified>yesterday</LastModified></Contents><IsTruncated>false</IsTruncated></ListBucketResult>", "LastModified"),
    ("<html><body>502 Bad Gateway</body></html>", "expected <ListBucketResult>"),
    ("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucket>", "closed by"),
    ("<ListBucketResult><IsTruncated>false</IsTruncated>", "missing </ListBucketResult>"),
    ("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult><x/>", "after the root"),
    ("<!DOCTYPE x [<!ENTITY e \"boom\">]><ListBucketResult/>", "DOCTYPE"),
    ("<ListBucketResult><Key>&bogus;</Key></ListBucketResult>", "unknown entity"),
    ("<ListBucketResult><Key>&#0;</Key></ListBucketResult>", "unknown entity"),
    ("<ListBucketResult><Key>a &amp b</Key></ListBucketResult>", "entity"),
    ("<ListBucketResult a=b></ListBucketResult>", "unquoted attribute"),
    ("", "not an XML document"),
    ("502 Bad Gateway", "not an XML document"),
  ])
  func malformedListingsAreRefused(text: String, reason: String) {
    #expect {
      _ = try S3Responses.listPage(bytes(text))
    } throws: { error in
      (error as? S3XML.Failure)?.reason.contains(reason) == true
    }
  }

  @Test func deepNestingIsRefused() {
    let text = String(repeating: "<a>", count: 100) + String(repeating: "</a>", count: 100)
    #expect(throws: S3XML.Failure.self) { _ = try S3XML.parse(bytes(text)) }
  }

  @Test func errorBodies() {
    let error = S3Responses.error(bytes("""
      <?xml version="1.0" encoding="UTF-8"?>
      <Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match &amp; so on</Message>
      <StringToSign>AWS4-HMAC-SHA256…</StringToSign><RequestId>1</RequestId></Error>
      """))
    #expect(error?.code == "SignatureDoesNotMatch")
    #expect(error?.message == "The request signature we calculated does not match & so on")
    #expect(S3Responses.error(bytes("<CompleteMultipartUploadResult><ETag>x</ETag></CompleteMultipartUploadResult>")) == nil)
    #expect(S3Responses.error(bytes("not xml")) == nil)
    #expect(S3Responses.error(bytes("<Error><Message>no code</Message></Error>")) == nil)
  }

  @Test func uploadIDAndCompletionBody() throws {
    #expect(
      try S3Responses.uploadID(bytes("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>abc&amp;1</UploadId></InitiateMultipartUploadResult>"))
        == "abc&1")
    #expect(throws: S3XML.Failure.self) { _ = try S3Responses.uploadID(bytes("<InitiateMultipartUploadResult/>")) }
    // rclone serve s3 (gofakes3), verbatim apart from the ID.
    #expect(
      try S3Responses.uploadID(bytes("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUpload>\n  <Bucket>b</Bucket>\n  <Key>k</Key>\n  <UploadId>d3b4</UploadId>\n</InitiateMultipartUpload>"))
        == "d3b4")
    #expect(throws: S3XML.Failure.self) { _ = try S3Responses.uploadID(bytes("<Error><UploadId>x</UploadId></Error>")) }
    let body = String(decoding: S3Responses.completeBody([(1, "aa"), (2, "b<b")]), as: UTF8.self)
    #expect(body.hasSuffix("<Part><PartNumber>1</PartNumber><ETag>&quot;aa&quot;</ETag></Part><Part><PartNumber>2</PartNumber><ETag>&quot;b&lt;b&quot;</ETag></Part></CompleteMultipartUpload>"))
    // What we send, we can read back.
    let parsed = try S3XML.parse(Array(body.utf8))
    #expect(parsed.children("Part").map { $0.child("ETag")?.text } == ["\"aa\"", "\"b<b\""])
  }

  @Test func etagsAreComparedWithoutQuotes() {
    #expect(S3Responses.normalizeETag("\"ABC-2\"") == "abc-2")
    #expect(S3Responses.normalizeETag("W/\"abc\"") == "abc")
    #expect(S3Responses.normalizeETag(" abc ") == "abc")
  }
}
