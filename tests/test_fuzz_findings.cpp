// What the fuzz targets found, each as a regular test over the input that found it (kept in the
// target's seed corpus as crash-*). Under the sanitizer tree these also fail on the original finding
// (a leak, an overflow), not only on a wrong result.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <functional>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/image_file.h"
#include "io/input_file.h"
#include "io/png.h"
#include "schedulers/scheduler.h"
#include "test_util.h"
#include "text/prompt_chunks.h"

namespace {

using sdtune::test::error_of;

std::string finding(const std::string& target, const std::string& name) {
  return std::string(SDTUNE_FUZZ_CORPUS) + "/" + target + "/" + name;
}

// libpng reported a corrupt IDAT by longjmp past our row buffers: the error was right, but C++ does
// not allow skipping destructors, and ASan saw the buffers leak. The buffers now live outside the jump.
TEST(FuzzFindings, CorruptPngPixelDataIsAnErrorAndFreesItsBuffers) {
  const std::string pixels = finding("image_fuzzer", "crash-png-longjmp-leak");
  EXPECT_NE(error_of([&] { sdtune::io::read_image(pixels); }).find("corrupt PNG"), std::string::npos);
  const std::string text = finding("png_text_fuzzer", "crash-png-text-longjmp-leak");
  EXPECT_NE(error_of([&] { sdtune::io::read_png_text(text); }).find("corrupt PNG: IDAT: incorrect data check"),
            std::string::npos);
}

double peak_memory_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024;
}

// A 209-byte PNG whose zTXt chunk declares 2 GB: libpng allocated the declared length before reading
// (2.2 GB, 1.7 s) and then failed. Chunk lengths are now checked against the file first.
TEST(FuzzFindings, APngChunkLongerThanTheFileIsRefusedBeforeLibpngAllocatesIt) {
  const std::string path = finding("png_text_fuzzer", "crash-png-ztxt-declares-2gb");
  const double before = peak_memory_mib();
  for (const auto& read : std::vector<std::function<void()>>{[&] { sdtune::io::read_png_text(path); },
                                                             [&] { sdtune::io::read_image(path); }})
    EXPECT_NE(error_of(read).find("corrupt PNG: chunk \"zTXt\" declares 2097152129 bytes, more than the file holds"),
              std::string::npos);
  EXPECT_LT(peak_memory_mib(), before + 64);
}

// A scheduler config whose _class_name is a number: nlohmann's type_error escaped, a message that
// names no file.
TEST(FuzzFindings, ASchedulerClassNameThatIsNotAStringIsAConfigError) {
  const auto config = nlohmann::json::parse(R"({"_class_name": 0, "trained_betas": null})");
  EXPECT_EQ(error_of([&] { sdtune::schedulers::make_scheduler("", config, {}, "scheduler_config.json"); }),
            "scheduler_config.json: config key \"_class_name\" must be a string, got 0");
}

// "(text:7777...771.1)" is a finite double but infinite as the float that scales the embeddings (and
// a few thousand nested brackets overflow alike): the image would be NaN.
TEST(FuzzFindings, AnEmphasisWeightBeyondAFloatIsRefused) {
  const std::string input = finding("prompt_text_fuzzer", "crash-weight-overflows-float");
  const std::string prompt = sdtune::io::read_file(input, 1 << 20, "prompt");
  const sdtune::text::ClipTokenizer tokenizer(sdtune::test::data_path("tiny-sd2/pipeline/tokenizer"));
  const sdtune::text::PromptOptions a1111{sdtune::text::PromptWeighting::A1111, false};
  EXPECT_NE(error_of([&] { sdtune::text::tokenize_prompt(tokenizer, prompt, a1111, "--prompt"); })
                .find("--prompt: an emphasis weight of 7.07071e+91 (on \"balan\") is beyond +-1000"),
            std::string::npos);
  EXPECT_NE(error_of([&] { sdtune::text::tokenize_prompt(tokenizer, std::string(5000, '(') + "x", a1111, "--prompt"); })
                .find("is beyond +-1000 (brackets nested too deep"),
            std::string::npos);
  EXPECT_NO_THROW(sdtune::text::tokenize_prompt(tokenizer, "(x:999) [y]", a1111, "--prompt"));
  EXPECT_NO_THROW(sdtune::text::tokenize_prompt(tokenizer, prompt, {}, "--prompt"));  // no emphasis: plain text
}

}  // namespace
