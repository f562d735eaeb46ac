// A local HTTP server that answers as the Hugging Face Hub does for downloads (cpp-httplib): the
// model-info API, resolve URLs (HEAD and GET) with X-Repo-Commit, X-Linked-Etag and X-Linked-Size and a
// redirect to a CDN address, Range requests there, 401 for a private repository without the token,
// 404 with X-Error-Code. It records every request it saw.
#pragma once
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <chrono>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace sdtune::test {

class FakeHub {
 public:
  struct Repo {
    Repo(std::string commit, std::map<std::string, std::string> files, bool is_private = false,
         std::map<std::string, std::string> etag_override = {})
        : commit(std::move(commit)), files(std::move(files)), is_private(is_private), etag_override(std::move(etag_override)) {}
    std::string commit;
    std::map<std::string, std::string> files;  // path -> content
    bool is_private;
    std::map<std::string, std::string> etag_override;  // path -> ETag to send instead (hostile answers)
  };

  FakeHub() {
    server_.Get(R"(/api/models/([^/]+/[^/]+)/revision/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      const Repo* repo = find(req, res, req.matches[1], req.matches[2]);
      if (!repo) return;
      nlohmann::json siblings = nlohmann::json::array();
      for (const auto& [path, content] : repo->files) siblings.push_back({{"rfilename", path}});
      res.set_content(nlohmann::json({{"id", std::string(req.matches[1])}, {"sha", repo->commit}, {"siblings", siblings}}).dump(),
                      "application/json");
    });
    server_.Get(R"(/([^/]+/[^/]+)/resolve/([^/]+)/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      const Repo* repo = find(req, res, req.matches[1], req.matches[2]);
      if (!repo) return;
      const auto file = repo->files.find(req.matches[3]);
      if (file == repo->files.end()) {
        res.status = 404;
        res.set_header("X-Error-Code", "EntryNotFound");
        return;
      }
      const std::string etag = repo->etag_override.count(file->first) ? repo->etag_override.at(file->first) : etag_of(file->second);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        blobs_[etag_of(file->second)] = file->second;
      }
      res.set_redirect(endpoint() + "/cdn/" + etag_of(file->second), 302);
      res.set_header("X-Repo-Commit", repo->commit);
      res.set_header("X-Linked-Etag", "\"" + etag + "\"");
      res.set_header("X-Linked-Size", std::to_string(file->second.size()));
    });
    server_.Get(R"(/cdn/([0-9a-f]+))", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mutex_);
      const auto blob = blobs_.find(req.matches[1]);
      if (blob == blobs_.end()) return void(res.status = 404);
      res.set_content(blob->second, "application/octet-stream");  // httplib answers Range requests with 206
    });
    server_.set_logger([this](const httplib::Request& req, const httplib::Response&) {
      std::lock_guard<std::mutex> lock(mutex_);
      requests_.push_back(req.method + " " + req.path + (req.has_header("Range") ? " Range=" + req.get_header_value("Range") : ""));
      if (req.has_header("Authorization")) authorization_ = req.get_header_value("Authorization");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeHub() {
    server_.stop();
    thread_.join();
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void add(const std::string& id, Repo repo) {
    std::lock_guard<std::mutex> lock(mutex_);
    repos_.insert_or_assign(id, std::move(repo));
  }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }
  void clear_requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    requests_.clear();
  }
  std::string authorization() {
    std::lock_guard<std::mutex> lock(mutex_);
    return authorization_;
  }

  static std::string etag_of(const std::string& content) {  // FNV-1a: any stable hex name will do
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : content) h = (h ^ c) * 1099511628211ull;
    std::ostringstream s;
    s << std::hex << h << content.size();
    return s.str();
  }

  // Every file under `folder`, by its path relative to it.
  static std::map<std::string, std::string> files_of(const std::string& folder) {
    std::map<std::string, std::string> files;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(folder)) {
      if (!entry.is_regular_file()) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      files[std::filesystem::relative(entry.path(), folder).string()] = std::string(std::istreambuf_iterator<char>(in), {});
    }
    return files;
  }

 private:
  const Repo* find(const httplib::Request& req, httplib::Response& res, const std::string& id, const std::string& revision) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto repo = repos_.find(id);
    if (repo == repos_.end()) {
      res.status = 404;
      res.set_header("X-Error-Code", "RepoNotFound");
      return nullptr;
    }
    if (repo->second.is_private && req.get_header_value("Authorization") != "Bearer secret-token") {
      res.status = 401;
      return nullptr;
    }
    if (revision != "main" && revision != repo->second.commit) {
      res.status = 404;
      res.set_header("X-Error-Code", "RevisionNotFound");
      return nullptr;
    }
    return &repo->second;
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::map<std::string, Repo> repos_;
  std::map<std::string, std::string> blobs_;
  std::vector<std::string> requests_;
  std::string authorization_;
};

}  // namespace sdtune::test
