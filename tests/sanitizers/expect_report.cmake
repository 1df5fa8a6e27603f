# expect_report.cmake: runs `EXE ARGS...` and passes only if ThreadSanitizer reported a data race
# whose report mentions EXPECT (a function or file name) and the program failed because of
# it. Used by the tsan_selftest tests (CMakeLists.txt): a clean run proves nothing unless the
# same build does report a real race.
#   cmake -DEXE=... -DARGS=arg,arg -DEXPECT=... -P expect_report.cmake
string(REPLACE "," ";" args "${ARGS}")
execute_process(COMMAND "${EXE}" ${args} RESULT_VARIABLE result OUTPUT_VARIABLE out
                ERROR_VARIABLE out)
message("${out}")
if(result EQUAL 0)
  message(FATAL_ERROR "expected a ThreadSanitizer report, but `${ARGS}` exited 0")
endif()
if(NOT out MATCHES "WARNING: ThreadSanitizer: data race")
  message(FATAL_ERROR "expected a ThreadSanitizer data race report (exit ${result})")
endif()
if(NOT out MATCHES "${EXPECT}")
  message(FATAL_ERROR "the report does not mention ${EXPECT}")
endif()
message("expect_report: `${ARGS}` was reported by ThreadSanitizer as expected (exit ${result})")
