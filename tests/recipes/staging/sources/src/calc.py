print('calc')
