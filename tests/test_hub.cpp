// Downloading from the Hub into huggingface_hub's cache layout, against a local server that answers
// as the Hub does (tests/support/fake_hub.h), and the parsers of the Hub's answers.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "hub/hub_responses.h"
#include "io/model_source.h"
#include "support/fake_hub.h"
#include "test_util.h"

namespace fs = std::filesystem;
using sdtune::test::data_path;
using sdtune::test::error_of;

namespace {

const std::string kCommit = "0123456789abcdef0123456789abcdef01234567";

// The environment a download sees: a private cache, the fake Hub as HF_ENDPOINT, no token.
struct HubEnvironment {
  sdtune::test::TempDir home;
  sdtune::test::FakeHub hub;
  HubEnvironment() {
    ::setenv("HF_HOME", home.path.c_str(), 1);
    ::setenv("HF_ENDPOINT", hub.endpoint().c_str(), 1);
    ::unsetenv("HF_HUB_CACHE");
    ::unsetenv("HF_TOKEN");
    ::unsetenv("HF_HUB_OFFLINE");
    auto files = sdtune::test::FakeHub::files_of(data_path("tiny-sd2/pipeline"));
    files["unet/diffusion_pytorch_model.bin"] = "pickle";  // never fetched
    hub.add("org/tiny-sd2", sdtune::test::FakeHub::Repo(kCommit, files));
  }
  ~HubEnvironment() {
    ::unsetenv("HF_HOME");
    ::unsetenv("HF_ENDPOINT");
  }
  fs::path repo() const { return home.path / "hub" / "models--org--tiny-sd2"; }
  int count(const std::string& needle) {
    int n = 0;
    for (const auto& r : hub.requests()) n += r.find(needle) != std::string::npos;
    return n;
  }
};

sdtune::io::HubOptions needs(std::vector<std::string> components) {
  sdtune::io::HubOptions options;
  options.components = std::move(components);
  return options;
}

TEST(Hub, DownloadsOnlyWhatTheCommandNeedsInHuggingFaceHubsLayout) {
  HubEnvironment env;
  // tokenize needs the tokenizer: model_index.json and tokenizer/ only.
  std::string snapshot = sdtune::io::resolve_model_dir("org/tiny-sd2", "main", needs({"tokenizer"}));
  EXPECT_EQ(snapshot, (env.repo() / "snapshots" / kCommit).string());
  EXPECT_EQ(env.count("HEAD /org/tiny-sd2/resolve/"), 5) << "model_index.json and 4 tokenizer files";
  EXPECT_EQ(env.count("GET /cdn/"), 5);
  EXPECT_EQ(env.count("unet/"), 0);
  EXPECT_FALSE(fs::exists(fs::path(snapshot) / "unet"));

  // generate needs everything but never the pickle.
  snapshot = sdtune::io::resolve_model_dir("org/tiny-sd2", "main", needs({"unet", "vae", "text_encoder", "tokenizer", "scheduler"}));
  EXPECT_EQ(env.count(".bin"), 0);
  const fs::path unet = fs::path(snapshot) / "unet" / "diffusion_pytorch_model.safetensors";
  ASSERT_TRUE(fs::is_symlink(unet));
  const std::string content = sdtune::test::FakeHub::files_of(data_path("tiny-sd2/pipeline")).at("unet/diffusion_pytorch_model.safetensors");
  EXPECT_EQ(fs::read_symlink(unet).string(), "../../../blobs/" + sdtune::test::FakeHub::etag_of(content));  // relative, as huggingface_hub
  EXPECT_EQ(fs::read_symlink(fs::path(snapshot) / "model_index.json").string().rfind("../../blobs/", 0), 0u);
  EXPECT_EQ(fs::file_size(unet), content.size());
  EXPECT_TRUE(fs::exists(env.home.path / "hub" / ".locks" / "models--org--tiny-sd2" / (sdtune::test::FakeHub::etag_of(content) + ".lock")));
  std::ifstream ref(env.repo() / "refs" / "main");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(ref), {}), kCommit);

  // Cached now: no request at all, also offline.
  env.hub.clear_requests();
  ::setenv("HF_HUB_OFFLINE", "1", 1);
  EXPECT_EQ(sdtune::io::resolve_model_dir("org/tiny-sd2", "main", needs({"unet", "vae", "text_encoder", "tokenizer", "scheduler"})), snapshot);
  EXPECT_TRUE(env.hub.requests().empty());
  const std::string offline = error_of([&] { sdtune::io::resolve_model_dir("org/other", "main", needs({"unet"})); });
  EXPECT_NE(offline.find("offline"), std::string::npos) << offline;
  EXPECT_TRUE(env.hub.requests().empty());
}

TEST(Hub, ResumesAPartialDownloadWithARangeRequest) {
  HubEnvironment env;
  const std::string content = sdtune::test::FakeHub::files_of(data_path("tiny-sd2/pipeline")).at("unet/diffusion_pytorch_model.safetensors");
  const fs::path partial = env.repo() / "blobs" / (sdtune::test::FakeHub::etag_of(content) + ".incomplete");
  fs::create_directories(partial.parent_path());
  std::ofstream(partial, std::ios::binary) << content.substr(0, 1000);
  const std::string snapshot = sdtune::io::resolve_model_dir("org/tiny-sd2", "main", needs({"unet"}));
  EXPECT_EQ(env.count("Range=bytes=1000-"), 1);
  std::ifstream in(fs::path(snapshot) / "unet" / "diffusion_pytorch_model.safetensors", std::ios::binary);
  EXPECT_TRUE(std::string(std::istreambuf_iterator<char>(in), {}) == content);
  EXPECT_FALSE(fs::exists(partial));

  // A partial file that is whole (a run killed before its rename) is taken as it is; one longer than
  // the file is no prefix of it and starts over.
  const std::string vae = sdtune::test::FakeHub::files_of(data_path("tiny-sd2/pipeline")).at("vae/diffusion_pytorch_model.safetensors");
  const std::string te = sdtune::test::FakeHub::files_of(data_path("tiny-sd2/pipeline")).at("text_encoder/model.safetensors");
  std::ofstream(env.repo() / "blobs" / (sdtune::test::FakeHub::etag_of(vae) + ".incomplete"), std::ios::binary) << vae;
  std::ofstream(env.repo() / "blobs" / (sdtune::test::FakeHub::etag_of(te) + ".incomplete"), std::ios::binary) << te << "trailing junk";
  env.hub.clear_requests();
  sdtune::io::resolve_model_dir("org/tiny-sd2", "main", needs({"unet", "vae", "text_encoder"}));
  EXPECT_EQ(env.count("GET /cdn/" + sdtune::test::FakeHub::etag_of(vae)), 0);
  EXPECT_EQ(env.count("GET /cdn/" + sdtune::test::FakeHub::etag_of(te)), 1);
  std::ifstream te_blob(env.repo() / "blobs" / sdtune::test::FakeHub::etag_of(te), std::ios::binary);
  EXPECT_TRUE(std::string(std::istreambuf_iterator<char>(te_blob), {}) == te);
}

TEST(Hub, EveryFailureIsOneClearLine) {
  HubEnvironment env;
  auto files = sdtune::test::FakeHub::files_of(data_path("tiny-sd2/pipeline"));
  env.hub.add("org/private", sdtune::test::FakeHub::Repo(kCommit, files, true));
  std::string message = error_of([&] { sdtune::io::resolve_model_dir("org/private", "main", needs({"tokenizer"})); });
  EXPECT_NE(message.find("HF_TOKEN"), std::string::npos) << message;
  EXPECT_NE(message.find("401"), std::string::npos) << message;
  ::setenv("HF_TOKEN", "secret-token", 1);
  EXPECT_NO_THROW(sdtune::io::resolve_model_dir("org/private", "main", needs({"tokenizer"})));
  EXPECT_EQ(env.hub.authorization(), "Bearer secret-token");
  ::setenv("HF_TOKEN", "secret-token\r\nX-Injected: 1", 1);
  message = error_of([&] { sdtune::io::resolve_model_dir("org/private", "main", needs({"unet"})); });
  EXPECT_NE(message.find("HF_TOKEN: contains control characters"), std::string::npos) << message;
  ::unsetenv("HF_TOKEN");

  message = error_of([&] { sdtune::io::resolve_model_dir("org/missing", "main", needs({"unet"})); });
  EXPECT_NE(message.find("not found on the Hub"), std::string::npos) << message;
  message = error_of([&] { sdtune::io::resolve_model_dir("org/tiny-sd2", "v9", needs({"unet"})); });
  EXPECT_NE(message.find("no such revision"), std::string::npos) << message;

  auto pickles = files;
  pickles.erase("unet/diffusion_pytorch_model.safetensors");
  pickles["unet/diffusion_pytorch_model.bin"] = "pickle";
  env.hub.add("org/pickles", sdtune::test::FakeHub::Repo(kCommit, pickles));
  env.hub.clear_requests();
  message = error_of([&] { sdtune::io::resolve_model_dir("org/pickles", "main", needs({"unet"})); });
  EXPECT_NE(message.find("only pickle files"), std::string::npos) << message;
  EXPECT_EQ(env.count("/resolve/"), 0);

  auto hostile = files;
  env.hub.add("org/hostile", sdtune::test::FakeHub::Repo(kCommit, hostile, false, {{"model_index.json", "../../../etc/x"}}));
  message = error_of([&] { sdtune::io::resolve_model_dir("org/hostile", "main", needs({"tokenizer"})); });
  EXPECT_NE(message.find("no usable ETag"), std::string::npos) << message;

  ::setenv("HF_ENDPOINT", "http://127.0.0.1:1", 1);
  message = error_of([&] { sdtune::io::resolve_model_dir("org/tiny-sd2", "main", needs({"unet"})); });
  EXPECT_NE(message.find("cannot reach the Hub"), std::string::npos) << message;
}

TEST(HubResponses, AnswersAreCheckedBeforeTheyNameFiles) {
  sdtune::hub::Headers headers;
  for (const char* line : {"HTTP/1.1 302 Found\r\n", "X-Repo-Commit: " "0123456789abcdef0123456789abcdef01234567\r\n",
                           "x-linked-etag: W/\"abc123\"\r\n", "X-Linked-Size: 42\r\n", "Location: https://cdn/x\r\n"})
    sdtune::hub::add_header_line(headers, line);
  const auto m = sdtune::hub::parse_file_metadata(headers, "url", true);
  EXPECT_EQ(m.etag, "abc123");
  EXPECT_EQ(m.size, 42);
  EXPECT_EQ(m.location, "https://cdn/x");
  headers["x-repo-commit"] = "main";
  EXPECT_NE(error_of([&] { sdtune::hub::parse_file_metadata(headers, "url", true); }).find("X-Repo-Commit"), std::string::npos);

  for (const char* bad : {R"({"sha": "0123456789abcdef0123456789abcdef01234567", "siblings": [{"rfilename": "../x"}]})",
                          R"({"sha": "0123456789abcdef0123456789abcdef01234567", "siblings": [{"rfilename": "/etc/passwd"}]})",
                          R"({"sha": "0123456789abcdef0123456789abcdef01234567", "siblings": [{"rfilename": "a\\b"}]})",
                          R"({"sha": "../x", "siblings": []})", R"([1, 2])"})
    EXPECT_THROW(sdtune::hub::parse_model_info(bad, "info"), sdtune::Error) << bad;

  const std::vector<std::string> listed = {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
                                           "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin",
                                           "text_encoder/config.json", "text_encoder/model.safetensors.index.json",
                                           "text_encoder/model-00001-of-00002.safetensors", "text_encoder/model-00002-of-00002.safetensors",
                                           "README.md", "v2-1_768-ema-pruned.ckpt"};
  EXPECT_EQ(sdtune::hub::select_files(listed, {"unet", "text_encoder"}, "", "repo"),
            (std::vector<std::string>{"model_index.json", "text_encoder/config.json", "text_encoder/model-00001-of-00002.safetensors",
                                      "text_encoder/model-00002-of-00002.safetensors", "text_encoder/model.safetensors.index.json",
                                      "unet/config.json", "unet/diffusion_pytorch_model.safetensors"}));
  EXPECT_EQ(sdtune::hub::select_files(listed, {"unet"}, "fp16", "repo"),
            (std::vector<std::string>{"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors"}));
}

}  // namespace
