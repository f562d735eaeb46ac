#include "hub/hub_http.h"

#include <cctype>

#include "core/error.h"
#include "core/printable.h"

#if SDTUNE_WITH_CURL
#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#endif

namespace sdtune::hub {

#if SDTUNE_WITH_CURL

namespace {

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~CurlGlobal() { curl_global_cleanup(); }
};

struct Transfer {
  Response response;
  uint64_t max_body = 0;
  int fd = -1;             // a download's file, or -1: the body is kept in memory
  long answer_status = 0;  // of the answer being received (the status line just read)
  int64_t offset = 0;      // bytes the file had before (a Range request)
  bool started = false;
  int write_errno = 0;
  int64_t written = 0;
  const std::function<void(int64_t)>* progress = nullptr;
};

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string line(data, size * count);
  if (line.rfind("HTTP/", 0) == 0) {  // a new answer (after a redirect)
    t->response.headers.clear();
    const size_t space = line.find(' ');
    t->answer_status = space == std::string::npos ? 0 : std::strtol(line.c_str() + space + 1, nullptr, 10);
  }
  add_header_line(t->response.headers, line);
  return size * count;
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  // In memory: answers of requests, and the error page of a failed download (never into its file).
  if (t->fd < 0 || t->answer_status < 200 || t->answer_status >= 300) {
    if (t->response.body.size() + n > t->max_body) return 0;
    t->response.body.append(data, n);
    return n;
  }
  if (!t->started) {
    t->started = true;
    // A server that ignores the Range header sends the whole file again: start the file over.
    if (t->offset > 0 && t->answer_status == 200) {
      if (::ftruncate(t->fd, 0) != 0) return t->write_errno = errno, 0;
      t->written = 0;
    }
  }
  for (size_t done = 0; done < n;) {
    const ssize_t w = ::write(t->fd, data + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      t->write_errno = w < 0 ? errno : EIO;
      return 0;
    }
    done += size_t(w);
  }
  t->written += int64_t(n);
  if (t->progress && *t->progress) (*t->progress)(t->written);
  return n;
}

using CurlHandle = std::unique_ptr<CURL, decltype(&curl_easy_cleanup)>;
using HeaderList = std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)>;

// Runs one transfer; a failure of the network (not an HTTP status) is an Error naming the URL.
void perform(CURL* curl, const std::string& url, const std::vector<std::string>& headers, Transfer& t, const std::string& file) {
  static CurlGlobal global;
  HeaderList list(nullptr, curl_slist_free_all);
  for (const auto& h : headers) list.reset(curl_slist_append(list.release(), h.c_str()));
  char error[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list.get());
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 20L);
  // A stalled transfer (under 1 KB/s for a minute) ends instead of hanging.
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  const CURLcode code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &t.response.status);
  if (code == CURLE_WRITE_ERROR && t.write_errno != 0)
    throw Error(file, std::string("cannot write the download: ") + std::strerror(t.write_errno) +
                          " (what was downloaded is kept and the next run resumes it)");
  if (code == CURLE_WRITE_ERROR) throw Error(url, "the Hub's answer is larger than " + std::to_string(t.max_body) + " bytes");
  if (code != CURLE_OK)
    throw Error(url, "cannot reach the Hub: " + printable(error[0] ? error : curl_easy_strerror(code)) +
                         " (check the network or HF_ENDPOINT; with --offline or HF_HUB_OFFLINE=1 only the local cache is used)");
}

}  // namespace

Response http_request(const std::string& method, const std::string& url, const std::vector<std::string>& headers, uint64_t max_body) {
  CurlHandle curl(curl_easy_init(), curl_easy_cleanup);
  Transfer t;
  t.max_body = max_body;
  if (method == "HEAD") curl_easy_setopt(curl.get(), CURLOPT_NOBODY, 1L);
  perform(curl.get(), url, headers, t, "");
  return t.response;
}

Response http_download(const std::string& url, const std::vector<std::string>& headers, const std::string& path, int64_t offset,
                       const std::function<void(int64_t)>& progress) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path, std::string("cannot write the download: ") + std::strerror(errno));
  struct Close {
    int fd;
    ~Close() { ::close(fd); }
  } close{fd};
  CurlHandle curl(curl_easy_init(), curl_easy_cleanup);
  Transfer t;
  t.fd = fd;
  t.max_body = 64u << 10;
  t.offset = offset;
  t.written = offset;
  t.progress = &progress;
  std::vector<std::string> all = headers;
  if (offset > 0) all.push_back("Range: bytes=" + std::to_string(offset) + "-");
  curl_easy_setopt(curl.get(), CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_MAXREDIRS, 10L);
  perform(curl.get(), url, all, t, path);
  if (::fsync(fd) != 0) throw Error(path, std::string("cannot write the download: ") + std::strerror(errno));
  return t.response;
}

#else
// Built without libcurl (scripts/gpu-check's portable build): Hub ids work from the local cache only.
[[noreturn]] static void no_downloads(const std::string& url) {
  throw Error(url, "this build of sdtune cannot download (built without libcurl); use a model in the local Hugging Face cache or a folder");
}
Response http_request(const std::string&, const std::string& url, const std::vector<std::string>&, uint64_t) { no_downloads(url); }
Response http_download(const std::string& url, const std::vector<std::string>&, const std::string&, int64_t,
                       const std::function<void(int64_t)>&) {
  no_downloads(url);
}
#endif

std::string url_encode(const std::string& text, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) out += char(c);
    else out += '%', out += hex[c >> 4], out += hex[c & 15];
  }
  return out;
}

}  // namespace sdtune::hub
