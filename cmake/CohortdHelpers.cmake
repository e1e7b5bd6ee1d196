# Helper functions shared by the module, test and benchmark CMakeLists.

# cohortd_library(NAME SRCS a.cc b.cc DEPS x y)
# A static library for one module; DEPS are linked PUBLIC so that a module's
# dependencies are declared once, in the module that has them.
function(cohortd_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SRCS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# cohortd_test(NAME SRCS a_test.cc DEPS x y LABELS unit [TIMEOUT s])
# One test binary per source file, discovered test by test so that CTest
# reports (and -R filters) individual cases. LABELS: unit, integration,
# stochastic.
function(cohortd_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} cohortd_test_support
                        GTest::gmock GTest::gtest_main)
  gtest_discover_tests(${name}
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    DISCOVERY_TIMEOUT 60)
  # cohortd_unit_tests builds every unit-labelled test (scripts/test runs
  # them all under ASan/UBSan).
  if("unit" IN_LIST ARG_LABELS)
    if(NOT TARGET cohortd_unit_tests)
      add_custom_target(cohortd_unit_tests)
    endif()
    add_dependencies(cohortd_unit_tests ${name})
  endif()
endfunction()

# cohortd_benchmark(NAME SRCS a_bench.cc DEPS x y)
function(cohortd_benchmark name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} benchmark::benchmark)
endfunction()
