mkdir -p $PREFIX/share/noarch-data
echo from-file-script > $PREFIX/share/noarch-data/data.txt
