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
ud_install_pc(userdb_pg)
