# install.cmake — what `cmake --install` puts where (GNUInstallDirs): the
# programs, a man page for each (help2man, from its --help and --version),
# the C SDK's header with a pkg-config file, the Python SDK, the examples
# (with the service files of examples/service: a systemd unit, an s6
# service directory) and .env-dist as an example configuration
# (share/idem/idem.env). The dashboard is inside idem-supervisor.
# Included by the top-level CMakeLists.txt.
include(GNUInstallDirs)

# Each program with the line its man page's NAME section gives it.
set(IDEM_INSTALLED_PROGRAMS
  "idem-supervisor|run idem: workers, the app's helper, the state DB, the control API and dashboard"
  "idem-worker|run an idem app's activities, one attempt at a time (started by idem-supervisor)"
  "idem-supplier|the inventory app's supplier, an outside service that de-duplicates by Idempotency-Key"
  "idemctl|the command-line client of idem-supervisor's control API"
  "idem-point|a crash point of an idem command activity"
  "idem-heartbeat|a heartbeat of an idem command activity"
  "idem-stress|crash-test an idem app: workflows under faults and supervisor kills, then the checker")

set(programs "")
set(pages "")
find_program(HELP2MAN help2man)
foreach(entry IN LISTS IDEM_INSTALLED_PROGRAMS)
  string(REPLACE "|" ";" parts "${entry}")
  list(GET parts 0 p)
  list(GET parts 1 summary)
  if(NOT TARGET ${p}) # idem-stress: with BUILD_TESTING only
    continue()
  endif()
  list(APPEND programs ${p})
  if(HELP2MAN)
    set(page ${CMAKE_BINARY_DIR}/man/${p}.1)
    # In the build directory, which holds no .env: a program reads
    # ./.env before it looks at --help.
    add_custom_command(OUTPUT ${page}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
      COMMAND ${HELP2MAN} --no-info --no-discard-stderr --version-string=${PROJECT_VERSION}
              --name=${summary} --output=${page} $<TARGET_FILE:${p}>
      WORKING_DIRECTORY ${CMAKE_BINARY_DIR}
      DEPENDS ${p}
      COMMENT "Man page of ${p}" VERBATIM)
    list(APPEND pages ${page})
  endif()
endforeach()
if(HELP2MAN)
  add_custom_target(idem_man ALL DEPENDS ${pages})
  install(FILES ${pages} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else()
  message(STATUS "help2man not found: no man pages (scripts/build installs it)")
endif()

install(TARGETS ${programs} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CMAKE_SOURCE_DIR}/sdk/c/idem_activity.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/idem)
# Header-only, so under share/ (on pkg-config's path), where its prefix is
# two directories up whatever LIBDIR is (lib, lib/x86_64-linux-gnu).
configure_file(${CMAKE_SOURCE_DIR}/cmake/idem.pc.in ${CMAKE_BINARY_DIR}/idem.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/idem.pc DESTINATION ${CMAKE_INSTALL_DATADIR}/pkgconfig)
# Where Debian's python3 finds the modules of packages (with --prefix /usr).
install(FILES ${CMAKE_SOURCE_DIR}/sdk/python/idem.py
  DESTINATION lib/python3/dist-packages)
# Under share/idem, not share/doc: minimal images drop share/doc.
install(FILES ${CMAKE_SOURCE_DIR}/.env-dist DESTINATION ${CMAKE_INSTALL_DATADIR}/idem
  RENAME idem.env)
# With their modes: the scripts among them stay executable (the shell
# app's activities, s6's run and finish in service/).
install(DIRECTORY ${CMAKE_SOURCE_DIR}/examples/ DESTINATION ${CMAKE_INSTALL_DATADIR}/idem/examples
  USE_SOURCE_PERMISSIONS PATTERN "__pycache__" EXCLUDE)
install(FILES ${CMAKE_SOURCE_DIR}/sdk/c/example.c
  DESTINATION ${CMAKE_INSTALL_DATADIR}/idem/examples/sdk)

# The package's configuration, /etc/idem/idem.env: .env-dist with its
# run/ paths in /var/lib/idem (where the service examples run), so that
# idemctl --env /etc/idem/idem.env finds the socket from any directory.
# A conffile: dpkg keeps the operator's edits across upgrades. Only in
# the package (component conffile): cmake --install never writes /etc.
file(READ ${CMAKE_SOURCE_DIR}/.env-dist idem_env_dist)
string(REPLACE "=run/" "=/var/lib/idem/" idem_env_etc "${idem_env_dist}")
file(WRITE ${CMAKE_BINARY_DIR}/package/idem.env "${idem_env_etc}")
file(WRITE ${CMAKE_BINARY_DIR}/package/conffiles "/etc/idem/idem.env\n")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/.env-dist)
install(FILES ${CMAKE_BINARY_DIR}/package/idem.env DESTINATION /etc/idem COMPONENT conffile
  EXCLUDE_FROM_ALL)

# A Debian package of the same install (cpack -G DEB in the build
# directory: idem_VERSION_ARCH.deb), for /usr, with /etc/idem/idem.env.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME idem)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "durable execution that proves activities idempotent under crash retries")
set(CPACK_PACKAGE_CONTACT "idem developers")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
  "libc6, libevent-2.1-7, libjansson4, libsqlite3-0, libpq5")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3")
# Everything cmake --install installs, and the conffile.
set(CPACK_INSTALL_CMAKE_PROJECTS "${CMAKE_BINARY_DIR};idem;ALL;/"
  "${CMAKE_BINARY_DIR};idem;conffile;/")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_BINARY_DIR}/package/conffiles)
include(CPack)
