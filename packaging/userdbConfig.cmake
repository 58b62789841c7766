# userdbConfig.cmake -- find_package(userdb CONFIG).
#
# Gives userdb::userdb, the shared library libuserdb (include/userdb.h on
# its include path).  Every userdb*Targets.cmake in this folder is
# included, so a library installed beside it later (the PostgreSQL
# connector) brings its own userdb:: target without a change here.  Static
# linking: pkg-config --static --libs userdb.
file(GLOB _userdb_target_files "${CMAKE_CURRENT_LIST_DIR}/userdb*Targets.cmake")
foreach(_userdb_f IN LISTS _userdb_target_files)
  include("${_userdb_f}")
endforeach()
unset(_userdb_f)
unset(_userdb_target_files)
set(userdb_FOUND TRUE)
