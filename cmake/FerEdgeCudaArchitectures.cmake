# fer_edge_default_cuda_architectures(<nvcc version> <out var>): the default CUDA architectures for
# the nvcc that CMake found, so a JetPack toolkit builds out of the box:
#   CUDA 11.4 (JetPack 5.1): 72 (Xavier) 75 80 86 87 (Orin)   -- 11.4 knows no 89 / 90
#   CUDA 11.8 .. 12.x:        72 75 80 86 87 89 90
#   CUDA 13.x:                75 80 86 87 89 90 110 (Thor)      -- 13 dropped 72 and older
# Older than 11.4 is refused (no sm_87, and JetPack 5.1 is the oldest supported target).
# Override with -DCMAKE_CUDA_ARCHITECTURES=... (e.g. "87" to build only for Orin).
function(fer_edge_default_cuda_architectures version out)
  if(version VERSION_LESS 11.4)
    message(FATAL_ERROR "fer_edge: nvcc ${version} is older than CUDA 11.4 (JetPack 5.1); "
      "set CMAKE_CUDA_ARCHITECTURES yourself or use a newer CUDA")
  endif()
  set(archs 75 80 86 87)
  if(version VERSION_LESS 13.0)
    list(PREPEND archs 72)
  endif()
  if(NOT version VERSION_LESS 11.8)
    list(APPEND archs 89 90)
  endif()
  if(NOT version VERSION_LESS 13.0)
    list(APPEND archs 110)
  endif()
  set(${out} "${archs}" PARENT_SCOPE)
endfunction()

# The release number ("12.6") `nvcc --version` prints, or "" when it cannot be run.
function(fer_edge_nvcc_version nvcc out)
  execute_process(COMMAND "${nvcc}" --version OUTPUT_VARIABLE text ERROR_QUIET RESULT_VARIABLE rc)
  set(version "")
  if(rc EQUAL 0 AND text MATCHES "release ([0-9]+\\.[0-9]+)")
    set(version "${CMAKE_MATCH_1}")
  endif()
  set(${out} "${version}" PARENT_SCOPE)
endfunction()
