# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_regtool_global_optspecs
    string join \n h/help V/version
end

function __fish_regtool_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_regtool_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_regtool_using_subcommand
    set -l cmd (__fish_regtool_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c regtool -n "__fish_regtool_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_needs_command" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "push-blob" -d 'Upload files (or - for stdin) as blobs; name them with @alias'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "pull-blob" -d 'Download blobs (verified) to stdout or a file'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "blob-size" -d 'Print the size of blobs, or the total size of an alias\'s blobs'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "mount-blob" -d 'Make a blob of another repository available in this one, without copying it'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "del-blob" -d 'Delete blobs; an @alias deletes its blobs and the alias'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "set-alias" -d 'Name blobs (by digest, or by hashing local files) with an alias'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "get-alias" -d 'Print the blob digests an alias names'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "del-alias" -d 'Delete aliases (not their blobs) and print the blob digests they named'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "get-digest" -d 'Print the config digest of aliases (dxf\'s get-digest)'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "resolve" -d 'Print the manifest digest an alias points at'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "get-manifest" -d 'Print raw manifests'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "list-aliases" -d 'List the aliases (tags) of a repository'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "list-repos" -d 'List the repositories of the registry'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "auth" -d 'Mint a bearer token for a repository (pull by default) and extra scopes'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "append-layer" -d 'Append tarballs as new layers to an image in a registry, without pulling it'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "copy" -d 'Copy an image or index between registries, repositories and OCI layouts'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "pull-image" -d 'Save a registry image to an OCI layout or a docker archive'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "push-image" -d 'Upload an image from an OCI layout or a docker archive to a registry'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "digest" -d 'Print the manifest digest of an image or a manifest file'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "flatten" -d 'Write the merged root filesystem of an image as one tar'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "squash" -d 'Merge layer tarballs into one plain layer tar'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "make-layer" -d 'Make a reproducible layer tar from files, directories and Python wheels'
complete -c regtool -n "__fish_regtool_needs_command" -f -a "make-image" -d 'Build an image from a base and layer tarballs, without touching a registry'
complete -c regtool -n "__fish_regtool_using_subcommand push-blob" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand push-blob" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand pull-blob" -s o -l output -d 'Write to FILE instead of stdout (a regular file atomically, after verification); - is stdout' -r -F
complete -c regtool -n "__fish_regtool_using_subcommand pull-blob" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand pull-blob" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand blob-size" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand blob-size" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand mount-blob" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand mount-blob" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand del-blob" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand del-blob" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand set-alias" -s h -l help -d 'Print help'
complete -c regtool -n "__fish_regtool_using_subcommand set-alias" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand get-alias" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand get-alias" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand del-alias" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand del-alias" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand get-digest" -s h -l help -d 'Print help'
complete -c regtool -n "__fish_regtool_using_subcommand get-digest" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand resolve" -s h -l help -d 'Print help'
complete -c regtool -n "__fish_regtool_using_subcommand resolve" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand get-manifest" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand get-manifest" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand list-aliases" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand list-aliases" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand list-repos" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand list-repos" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand auth" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand auth" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand append-layer" -s h -l help -d 'Print help'
complete -c regtool -n "__fish_regtool_using_subcommand append-layer" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand copy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand copy" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand pull-image" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand pull-image" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand push-image" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand push-image" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand digest" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand digest" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand flatten" -s o -l output -d 'Write the tar to FILE instead of stdout: a regular file (or a symlink\'s target) complete or not at all, keeping its mode; a device, FIFO or /dev/fd/N as the tar is made; - is stdout' -r -F
complete -c regtool -n "__fish_regtool_using_subcommand flatten" -l config -d 'Also write the image\'s config (JSON, as stored) to FILE' -r -F
complete -c regtool -n "__fish_regtool_using_subcommand flatten" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand flatten" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand squash" -s o -l output -d 'Write the tar to FILE instead of stdout: a regular file (or a symlink\'s target) complete or not at all, keeping its mode; a device, FIFO or /dev/fd/N as the tar is made; - is stdout' -r -F
complete -c regtool -n "__fish_regtool_using_subcommand squash" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand squash" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand make-layer" -l prefix -d 'Where inputs without a DEST go, and the root of a wheel\'s bin/ and data' -r
complete -c regtool -n "__fish_regtool_using_subcommand make-layer" -l site-packages -d 'Where wheels install their packages' -r
complete -c regtool -n "__fish_regtool_using_subcommand make-layer" -s o -l output -d 'Write the tar to FILE instead of stdout: a regular file (or a symlink\'s target) complete or not at all, keeping its mode; a device, FIFO or /dev/fd/N as the tar is made; - is stdout' -r -F
complete -c regtool -n "__fish_regtool_using_subcommand make-layer" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand make-layer" -s V -l version -d 'Print version'
complete -c regtool -n "__fish_regtool_using_subcommand make-image" -l base -d 'The base image (none: scratch)' -r
complete -c regtool -n "__fish_regtool_using_subcommand make-image" -s o -l output -d 'Where to write the image: docker-archive:PATH[:NAME], PATH.tar, or oci:PATH[:TAG]' -r
complete -c regtool -n "__fish_regtool_using_subcommand make-image" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c regtool -n "__fish_regtool_using_subcommand make-image" -s V -l version -d 'Print version'
