#include "tools/cohortctl/table_format.h"

#include "gtest/gtest.h"

namespace cohortd::cohortctl {
namespace {

TEST(TableFormatTest, AlignsColumnsAndCountsUtf8AsOneColumn) {
  Table table;
  table.header = {"name", "ε"};
  table.right_aligned = {false, true};
  table.rows = {{"novice", "0.5"}, {"expert", "10"}};
  EXPECT_EQ(FormatTable(table),
            "name      ε\n"
            "------  ---\n"
            "novice  0.5\n"
            "expert   10\n");
}

TEST(TableFormatTest, CsvQuotesOnlyWhatNeedsIt) {
  Table table;
  table.header = {"a", "b"};
  table.rows = {{"x,y", "say \"hi\""}, {"plain", ""}};
  EXPECT_EQ(FormatCsv(table), "a,b\n\"x,y\",\"say \"\"hi\"\"\"\nplain,\n");
}

TEST(TableFormatTest, HumanNumbersKeepFourSignificantDigits) {
  EXPECT_EQ(HumanNumber(0), "0");
  EXPECT_EQ(HumanNumber(0.28339), "0.2834");
  EXPECT_EQ(HumanNumber(12.3456), "12.35");
  EXPECT_EQ(HumanNumber(1234.56), "1235");
  EXPECT_EQ(HumanNumber(123456.7), "123457");
  EXPECT_EQ(HumanNumber(-3.5), "-3.500");
  EXPECT_EQ(HumanNumber(1e-9), "1e-09");
}

TEST(TableFormatTest, ExactNumbersRoundTrip) {
  EXPECT_EQ(ExactNumber(0.1), "0.1");
  EXPECT_EQ(ExactNumber(123456.75), "123456.75");
  const double third = 1.0 / 3;
  EXPECT_EQ(std::stod(ExactNumber(third)), third);
}

}  // namespace
}  // namespace cohortd::cohortctl
