# Each public header compiles alone, as C++17 and as C++20, with -pedantic-errors (which also
# rejects C++20 features GCC accepts in C++17 as extensions, such as designated initializers):
# a header that needs another include, or a newer standard, fails the build.
file(GLOB CONVNEXT_PUBLIC_HEADERS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/include/convnext/*.h)
set(header_units "")
foreach(header ${CONVNEXT_PUBLIC_HEADERS})
  get_filename_component(name ${header} NAME_WE)
  set(unit ${CMAKE_CURRENT_BINARY_DIR}/header_check/${name}.cpp)
  file(CONFIGURE OUTPUT ${unit} CONTENT "#include \"convnext/${name}.h\"  // alone, first\n")
  list(APPEND header_units ${unit})
endforeach()
foreach(std 17 20)
  add_library(convnext_header_check_cxx${std} OBJECT ${header_units})
  set_target_properties(convnext_header_check_cxx${std} PROPERTIES CXX_STANDARD ${std} CXX_STANDARD_REQUIRED ON
                                                                   CXX_EXTENSIONS OFF)
  target_include_directories(convnext_header_check_cxx${std} PRIVATE ${PROJECT_SOURCE_DIR}/include)
  target_compile_options(convnext_header_check_cxx${std} PRIVATE -pedantic-errors -Werror)
endforeach()
