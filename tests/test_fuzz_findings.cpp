// What the fuzz targets found, each as a regular test over the input that found it (kept in the
// target's seed corpus as crash-*). Under the sanitizer tree these also fail on the original finding
// (a leak, an overflow), not only on a wrong result.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <functional>
#include <vector>

#include "io/image_file.h"
#include "io/png.h"
#include "test_util.h"

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

}  // namespace
