// HTTP for the Hub through libcurl: one request whose answer is kept in memory (bounded), and one
// download streamed into a file with resumption. Network failures become one Error naming the URL.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "hub/hub_responses.h"

namespace sdtune::hub {

struct Response {
  long status = 0;
  Headers headers;  // of the last answer
  std::string body;
};

// `method` HEAD or GET; redirects are not followed (the caller decides which to follow). A body over
// `max_body` bytes is an Error.
Response http_request(const std::string& method, const std::string& url, const std::vector<std::string>& headers,
                      uint64_t max_body = 16u << 20);

// GET `url` (redirects followed; a header named Authorization is not sent to another host) appending
// to `path` from byte `offset` (a Range request when offset > 0). `progress` gets the bytes in the
// file so far. A write that fails (a full disk) is an Error naming `path`; what was written stays.
Response http_download(const std::string& url, const std::vector<std::string>& headers, const std::string& path,
                       int64_t offset, const std::function<void(int64_t)>& progress);

// A URL path segment with everything but unreserved characters percent-encoded ('/' kept when `keep_slash`).
std::string url_encode(const std::string& text, bool keep_slash);

}  // namespace sdtune::hub
