# userdb_pgTargets.cmake -- userdb::pgcache, the embedded PostgreSQL
# connector (a static library), included by userdbConfig.cmake.  It is
# described once, by userdb_pg.pc installed beside this package, and read
# here through pkg-config; without pkg-config or libpq's development files
# the target is simply absent (userdb::userdb still works).
if(NOT TARGET userdb::pgcache)
  get_filename_component(_ud_pg_pc "${CMAKE_CURRENT_LIST_DIR}/../../pkgconfig"
    ABSOLUTE)
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    set(_ud_pg_path "$ENV{PKG_CONFIG_PATH}")
    set(ENV{PKG_CONFIG_PATH} "${_ud_pg_pc}:${_ud_pg_path}")
    pkg_check_modules(_userdb_pg QUIET IMPORTED_TARGET GLOBAL userdb_pg)
    set(ENV{PKG_CONFIG_PATH} "${_ud_pg_path}")
    if(_userdb_pg_FOUND)
      add_library(userdb::pgcache INTERFACE IMPORTED)
      target_link_libraries(userdb::pgcache INTERFACE PkgConfig::_userdb_pg)
    endif()
  endif()
  unset(_ud_pg_pc)
  unset(_ud_pg_path)
endif()
