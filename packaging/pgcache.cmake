# The embedded PostgreSQL connector (connector/, include/userdb_pg.h),
# installed beside libuserdb:
#   LIBDIR/libuserdb_pgcache.a     the connector (with the row codec and
#                                  stream reader it shares with the server)
#   include/userdb_pg.h
#   LIBDIR/pkgconfig/userdb_pg.pc  pkg-config --cflags --libs userdb_pg
#   LIBDIR/cmake/userdb/userdb_pgTargets.cmake
#                                  find_package(userdb) -> userdb::pgcache
# An embedding program links it with libuserdb_engine.a and libpq.
install(TARGETS userdb_pgcache
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(FILES ${PROJECT_SOURCE_DIR}/include/userdb_pg.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/userdb_pgTargets.cmake
  DESTINATION ${UD_CMAKE_DIR} COMPONENT dev)
install(CODE "
  set(UD_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(UD_PC_LIBDIR [[${ud_pc_LIBDIR}]])
  set(UD_PC_INCLUDEDIR [[${ud_pc_INCLUDEDIR}]])
  set(PROJECT_VERSION \"${PROJECT_VERSION}\")
  set(ud_pc \"\${CMAKE_INSTALL_PREFIX}/${UD_PC_DIR}/userdb_pg.pc\")
  message(STATUS \"Installing: \$ENV{DESTDIR}\${ud_pc}\")
  configure_file(\"${CMAKE_CURRENT_SOURCE_DIR}/userdb_pg.pc.in\"
                 \"\$ENV{DESTDIR}\${ud_pc}\" @ONLY)
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\$ENV{DESTDIR}\${ud_pc}\")
  " COMPONENT dev)
