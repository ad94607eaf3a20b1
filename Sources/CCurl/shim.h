// SPDX-License-Identifier: Apache-2.0
// Typed wrappers over libcurl's variadic entry points.
//
// Swift cannot call C variadic functions, so every curl_easy_setopt/getinfo call we need goes
// through one of these static inline functions, one per argument type. Each returns the CURLcode
// so the Swift side can check every option (a silently ignored TLS option is a security bug).
#ifndef VAULTKEEPER_CCURL_SHIM_H
#define VAULTKEEPER_CCURL_SHIM_H

#include <curl/curl.h>
#include <stdint.h>

typedef size_t (*ccurl_data_callback)(char *_Nonnull ptr, size_t size, size_t nmemb, void *_Nullable userdata);
typedef int (*ccurl_xferinfo_callback)(void *_Nullable clientp, curl_off_t dltotal, curl_off_t dlnow,
                                       curl_off_t ultotal, curl_off_t ulnow);

static inline CURLcode ccurl_setopt_long(CURL *_Nonnull h, CURLoption o, long v) {
  return curl_easy_setopt(h, o, v);
}
static inline CURLcode ccurl_setopt_off(CURL *_Nonnull h, CURLoption o, curl_off_t v) {
  return curl_easy_setopt(h, o, v);
}
static inline CURLcode ccurl_setopt_string(CURL *_Nonnull h, CURLoption o, const char *_Nullable v) {
  return curl_easy_setopt(h, o, v);
}
static inline CURLcode ccurl_setopt_pointer(CURL *_Nonnull h, CURLoption o, void *_Nullable v) {
  return curl_easy_setopt(h, o, v);
}
static inline CURLcode ccurl_setopt_slist(CURL *_Nonnull h, CURLoption o, struct curl_slist *_Nullable v) {
  return curl_easy_setopt(h, o, v);
}
static inline CURLcode ccurl_setopt_data_callback(CURL *_Nonnull h, CURLoption o, ccurl_data_callback _Nullable f) {
  return curl_easy_setopt(h, o, f);
}
static inline CURLcode ccurl_setopt_xferinfo_callback(CURL *_Nonnull h, ccurl_xferinfo_callback _Nullable f) {
  return curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, f);
}
static inline CURLcode ccurl_getinfo_long(CURL *_Nonnull h, CURLINFO i, long *_Nonnull v) {
  return curl_easy_getinfo(h, i, v);
}
static inline CURLcode ccurl_getinfo_socket(CURL *_Nonnull h, curl_socket_t *_Nonnull v) {
  return curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, v);
}
static inline CURLcode ccurl_getinfo_certinfo(CURL *_Nonnull h, struct curl_certinfo *_Nullable *_Nonnull v) {
  return curl_easy_getinfo(h, CURLINFO_CERTINFO, v);
}

#endif
