# `cmake --install BUILD --prefix P`: the public headers, libconvnext, the convnext tool, the CMake
# package (find_package(convnext CONFIG) -> convnext::convnext) and convnext.pc for pkg-config.
include(CMakePackageConfigHelpers)
set(CONVNEXT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/convnext)

install(TARGETS convnext EXPORT convnextTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/convnext DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(CONVNEXT_BUILD_TOOLS)
  install(TARGETS convnext_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

# ---- CMake package ----------------------------------------------------------
install(EXPORT convnextTargets NAMESPACE convnext:: DESTINATION ${CONVNEXT_CMAKE_DIR})
configure_package_config_file(cmake/convnextConfig.cmake.in ${PROJECT_BINARY_DIR}/convnextConfig.cmake
                              INSTALL_DESTINATION ${CONVNEXT_CMAKE_DIR})
# 0.x: a minor version may break the API, as the soname says.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/convnextConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/convnextConfig.cmake ${PROJECT_BINARY_DIR}/convnextConfigVersion.cmake
        DESTINATION ${CONVNEXT_CMAKE_DIR})

# ---- pkg-config ---------------------------------------------------------------
# A shared libconvnext records its own dependencies; a static one leaves them to the program's
# link, so `pkg-config --static` must list them: Libs.private gets the flags that link each one
# as its own .pc gives them (else the libraries CMake found). Not Requires.private: its --static
# closure would also ask for the static dependencies of those libraries (libcurl's nghttp2, ssh2,
# ldap...), which a system with shared libraries only does not have.
set(CONVNEXT_PC_LIBS "")
function(convnext_pc_dependency module)  # module [libraries to use when pkg-config lacks it...]
  pkg_check_modules(CONVNEXT_PC_${module} QUIET ${module})
  if(CONVNEXT_PC_${module}_FOUND)
    list(APPEND CONVNEXT_PC_LIBS ${CONVNEXT_PC_${module}_LDFLAGS})
  else()
    list(APPEND CONVNEXT_PC_LIBS ${ARGN})
  endif()
  set(CONVNEXT_PC_LIBS ${CONVNEXT_PC_LIBS} PARENT_SCOPE)
endfunction()
if(NOT BUILD_SHARED_LIBS)
  list(APPEND CONVNEXT_PC_LIBS ${CMAKE_THREAD_LIBS_INIT})
  if(CONVNEXT_HAVE_HDF5)
    convnext_pc_dependency(hdf5 ${HDF5_C_LIBRARIES})
  endif()
  if(CONVNEXT_HAVE_CURL)
    convnext_pc_dependency(libcurl ${CURL_LIBRARIES})
  endif()
  if(CONVNEXT_HAVE_MPI)
    convnext_pc_dependency(ompi-cxx ${MPI_CXX_LIBRARIES})
  endif()
  list(APPEND CONVNEXT_PC_LIBS ${CONVNEXT_WEBP_LDFLAGS})
  convnext_pc_dependency(libpng ${PNG_LIBRARIES})
  convnext_pc_dependency(libjpeg ${JPEG_LIBRARIES})
  convnext_pc_dependency(zlib ${ZLIB_LIBRARIES})
endif()
list(JOIN CONVNEXT_PC_LIBS " " CONVNEXT_PC_LIBS)
# Paths relative to the .pc file, so the installed tree works under whatever --prefix it got.
set(CONVNEXT_PC_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(IS_ABSOLUTE "${CONVNEXT_PC_DIR}")
  set(CONVNEXT_PC_PREFIX ${CMAKE_INSTALL_PREFIX})
else()
  file(RELATIVE_PATH rel /prefix/${CONVNEXT_PC_DIR} /prefix)
  string(REGEX REPLACE "/$" "" rel "${rel}")
  set(CONVNEXT_PC_PREFIX "\${pcfiledir}/${rel}")
endif()
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(CONVNEXT_PC_${dir} ${CMAKE_INSTALL_${dir}})
  else()
    set(CONVNEXT_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
configure_file(cmake/convnext.pc.in ${PROJECT_BINARY_DIR}/convnext.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/convnext.pc DESTINATION ${CONVNEXT_PC_DIR})
